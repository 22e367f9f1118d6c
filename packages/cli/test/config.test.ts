// Config files as the copy command and `escp server` read them: a value the flag would refuse
// on the command line is refused here, by file and line, before anything runs.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { expect } from 'chai'
import { configArgv, loadConfig } from '../src/config'
import { COPY_FLAGS } from '../src/copy-flags'

const KNOWN = new Set(Object.keys(COPY_FLAGS))

describe('config files', function () {
  let dir: string
  let file: string

  beforeEach(function () {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'escp-config-'))
    file = path.join(dir, 'config.yaml')
  })

  afterEach(function () {
    fs.rmSync(dir, { recursive: true, force: true })
  })

  /** loadConfig's error for `text` as the file's contents, or null when it loads. */
  function refusal(text: string): { code?: string; message: string } | null {
    fs.writeFileSync(file, text)
    try {
      loadConfig([file], KNOWN)
      return null
    } catch (err) {
      return err as { code?: string; message: string }
    }
  }

  it('refuses a value of the wrong kind or out of range, naming the file, the line and the flag', function () {
    const cases: Array<[string, RegExp]> = [
      ['parallel: 0', /'parallel' must be an integer from 1 to 128, not '0'/],
      ['parallel: 129', /'parallel' must be an integer from 1 to 128/],
      ['parallel: abc', /'parallel' must be an integer/],
      ['parallel: 2.5', /'parallel' must be an integer/],
      ['parallel: true', /'parallel' must be an integer/],
      ['escp-port: 70000', /'escp-port' must be an integer from 1 to 65535, not '70000'/],
      ['blocksize: 1x', /'blocksize': '1x' is not a size/],
      ['limit: abc', /'limit': 'abc' is not a rate/],
      ['limit: 0', /'limit': '0' is not a positive rate/],
      ['cipher: [aes-128-gcm, chacha20-poly1305]', /'cipher' takes one value, not a list/],
      ['parallel: [2, 3]', /'parallel' takes one value, not a list/],
      ['recursive: yes', /'recursive' takes true or false, not 'yes'/],
      ['recursive: 1', /'recursive' takes true or false/],
      ['cipher: true', /'cipher' takes a string, not true/],
      ['cipher:', /'cipher' has no value/],
      ['cipher: {name: x}', /'cipher' takes one value, not a map/],
      ['ssh-option: [1, 2]', /'ssh-option' must be a list of strings/],
      ['blocksize: 32K', /'blocksize' must be from 65536 to 67108864 bytes, not '32K'/],
      ['blocksize: 128M', /'blocksize' must be from 65536 to 67108864 bytes/],
      ['cpumask: 0x0f', /'cpumask' takes a string, not the number 15; quote it/],
    ]
    for (const [line, message] of cases) {
      // The bad value on line 3, after good ones.
      const err = refusal(`bits: true\ncompress: true\n${line}\n`)
      expect(err, line).to.not.equal(null)
      expect(err?.code, line).to.equal('ESCP_ERR_CONFIG')
      expect(err?.message, line).to.contain(`ESCP_ERR_CONFIG: ${file}:3: `).and.match(message)
    }
  })

  it('takes each kind of value as the command line does', function () {
    fs.writeFileSync(
      file,
      [
        'parallel: 8',
        'escp-port: "2000"',
        'blocksize: 4M',
        'limit: 1Gbit',
        'recursive: true',
        'sparse: false',
        'cipher: chacha20-poly1305',
        'bind: 127.0.0.1',
        'ssh-option: [Compression=no, BatchMode=yes]',
        'plugin-option: uringQueueDepth=64',
        // A name is the transfer's to check, not the config's.
        'checksum: no-such-checksum',
        '',
      ].join('\n'),
    )
    const values = loadConfig([file], KNOWN)
    expect(values).to.deep.include({ parallel: 8, 'escp-port': '2000', blocksize: '4M', recursive: true, sparse: false, checksum: 'no-such-checksum' })
    const booleans = new Set(['recursive', 'sparse'])
    expect(configArgv(values, booleans)).to.include.members(['--recursive', '--parallel', '8', '--blocksize', '4M', '--plugin-option', 'uringQueueDepth=64']).and.not.include('--sparse')
  })

  it('still refuses a name that is not a flag', function () {
    expect(refusal('parallel: 2\nfavourite-colour: blue\n')?.message).to.contain(`${file}:2: 'favourite-colour' is not an escp flag`)
  })
})
