// The copy command's command line as the entry point reads it without oclif: what it reads
// must be what oclif reads from the same words, and what it cannot read so is left to oclif.
// Config defaults give way to the command line, on both ways.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { Parser } from '@oclif/core'
import { expect } from 'chai'
import { protocol } from '@escp/core'
import { normalizeArgv } from '../src/argv'
import Copy from '../src/commands/copy'
import { withConfigDefaults } from '../src/copy-command'
import { COPY_FLAGS, flagsSetIn, readCopyWords } from '../src/copy-flags'
import { copyArgsWithoutOclif } from '../src/copy-start'

/** oclif's reading of the copy command's words: its flags and operands, or its error. */
async function oclifReads(words: string[]): Promise<{ operands: string[]; flags: Record<string, unknown> } | { error: string }> {
  try {
    const r = await Parser.parse(words, { flags: Copy.flags, args: Copy.args, strict: false })
    // As the command takes them (Copy.run): in the order given.
    return { operands: r.raw.filter((t) => t.type === 'arg').map((t) => t.input), flags: r.flags }
  } catch (err) {
    return { error: (err as Error).message }
  }
}

/** The copy command's words from an scp-style command line, as the entry point has them. */
const words = (argv: string[]) => normalizeArgv(argv).slice(1)

describe('the copy command read without oclif', function () {
  // Command lines read here, each as oclif reads it.
  const plain = [
    ['a', 'b'],
    ['-r', 'dir', 'host:/dest/'],
    ['-rpq', '-t4', 'a', 'b', 'c/'],
    ['a', '-C', 'b'],
    ['-P', '2222', '-i', '/k', '-F', 'cfg', '-J', 'jump', '-c', 'aes128-gcm@openssh.com', 'a', 'u@h:x'],
    ['-o', 'Compression=no', '-o', 'ServerAliveInterval=5', '-4', '-B', '-A', 'a', 'h:'],
    ['--blocksize', '64K', '--parallel=8', '-l', '100M', 'a', 'b'],
    ['--blocksize=4M', '--limit', '1Gbit', 'a', 'b'],
    ['--cipher', 'chacha20-poly1305', '--checksum', 'blake3', '--ioengine', 'posix::node-fs', 'a', 'b'],
    ['--nochecksum', '--sparse', '--nodirect', '--bits', '--escp-port', '2000', '--escp-portrange', '5', 'a', 'b'],
    ['--plugin-option', 'x=1', '--plugin-option=y=two', '--cpumask', '0-1', '--bind', '127.0.0.1', 'a', 'b'],
    ['-vv', '--logfile', '/tmp/log', '-S', 'myssh', '-D', '/opt/escp', 'a', 'h:b'],
    ['-t', '03', 'a', 'b'],
    ['-r', '-r', 'a', 'b'],
    ['--', '-weird name', 'b'],
    ['a', '--', '-r', 'b'],
    ['-', 'b'],
    ['--bind=', 'a', 'b'],
    ['-s', '-O', '-T', '-R', 'a', 'b'],
    ['--filelist', 'list.txt', 'dest/'],
    ['only-one'],
    [],
    // A word given twice, or as a flag's value too, stays where it was given.
    ['-i', 'k', 'a', 'k'],
    ['a', 'b', 'a'],
    ['-v', '--', 'a', 'b'],
  ]
  // Command lines left to oclif: help, unknown or repeated flags, values it refuses, forms it reads its own way.
  const leftToOclif = [
    ['--help'],
    ['-h', 'a', 'b'],
    ['--nope', 'a', 'b'],
    ['--cip', 'x', 'a', 'b'],
    ['-5', 'a', 'b'],
    ['--cipher', 'a', '--cipher', 'b', 'x', 'y'],
    ['-t', '3', '-t', '4', 'a', 'b'],
    ['-t', '0', 'a', 'b'],
    ['-t', '129', 'a', 'b'],
    ['--blocksize', '32K', 'a', 'b'],
    ['-t', '+3', 'a', 'b'],
    ['-t', '3.0', 'a', 'b'],
    ['--escp-port', '70000', 'a', 'b'],
    ['-l', 'fast', 'a', 'b'],
    ['--blocksize', '', 'a', 'b'],
    ['-o', '-x', 'a', 'b'],
    ['-l', '-5', 'a', 'b'],
    ['--recursive=true', 'a', 'b'],
    ['a', 'b', '--cipher'],
    ['-L'],
  ]

  it('reads each plain command line as oclif does', async function () {
    for (const argv of plain) {
      const w = words(argv)
      const mine = readCopyWords(w)
      expect(mine, `not read: ${JSON.stringify(argv)}`).to.not.equal(null)
      expect(mine, JSON.stringify(argv)).to.deep.equal(await oclifReads(w))
    }
  })

  it('leaves to oclif what it reads otherwise, refuses or prints instead of copying', async function () {
    for (const argv of leftToOclif) {
      const w = words(argv)
      const mine = readCopyWords(w)
      const theirs = await oclifReads(w)
      if (argv[0] === '-L') {
        // --license prints instead of copying: read alike, and not run without oclif.
        expect(mine, JSON.stringify(argv)).to.deep.equal(theirs)
        expect(copyArgsWithoutOclif(['copy', ...w], { ESCP_CONFIG: '/dev/null', HOME: '/nonexistent' })).to.equal(null)
      } else {
        expect(mine, `read: ${JSON.stringify(argv)} (oclif: ${JSON.stringify(theirs)})`).to.equal(null)
      }
    }
  })

  it('bounds the block size as the protocol does', function () {
    expect([COPY_FLAGS.blocksize.min, COPY_FLAGS.blocksize.max]).to.deep.equal([protocol.MIN_BLOCK_BYTES, protocol.MAX_BLOCK_BYTES])
  })

  it('keeps -v before the operands that follow --', function () {
    expect(normalizeArgv(['-v', '--', '-a', 'b'])).to.deep.equal(['copy', '--verbose', '1', '--', '-a', 'b'])
  })

  it('knows which flags a command line sets, skipping their values', function () {
    expect([...flagsSetIn(words(['-rt', '3', '--cipher=x', '-o', '-t', 'a', '--', '-p', 'b']))].sort()).to.deep.equal(['cipher', 'parallel', 'recursive', 'ssh-option'])
  })

  describe('with config files', function () {
    let dir: string
    let env: NodeJS.ProcessEnv

    beforeEach(function () {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'escp-copy-start-'))
      env = { HOME: dir, XDG_DATA_HOME: path.join(dir, 'share'), ESCP_CONFIG: path.join(dir, 'config.yaml') }
    })

    afterEach(function () {
      fs.rmSync(dir, { recursive: true, force: true })
    })

    it('takes their defaults, and the command line replaces any flag it sets, a repeatable one wholly', async function () {
      fs.writeFileSync(path.join(dir, 'config.yaml'), 'parallel: 2\ncipher: aes-256-gcm\nrecursive: true\nssh-option: [A=1, B=2]\n')
      const args = ['copy', ...words(['-t', '3', '-o', 'C=3', 'a', 'b'])]
      const read = copyArgsWithoutOclif(args, env)
      expect(read).to.not.equal(null)
      expect(read?.operands).to.deep.equal(['a', 'b'])
      expect(read?.flags).to.include({ parallel: 3, cipher: 'aes-256-gcm', recursive: true })
      expect(read?.flags['ssh-option']).to.deep.equal(['C=3'])
      // oclif reads the same words alike.
      const both = withConfigDefaults(args.slice(1), [path.join(dir, 'config.yaml')])
      expect(await oclifReads(both)).to.deep.equal(read)
    })

    it('leaves to oclif a config it cannot load, and any command line while a plugin may be installed through it', function () {
      fs.writeFileSync(path.join(dir, 'config.yaml'), 'parallel: [2\n')
      expect(copyArgsWithoutOclif(['copy', 'a', 'b'], env)).to.equal(null)
      fs.writeFileSync(path.join(dir, 'config.yaml'), 'favourite-colour: blue\n')
      expect(copyArgsWithoutOclif(['copy', 'a', 'b'], env)).to.equal(null)
      fs.writeFileSync(path.join(dir, 'config.yaml'), '')
      expect(copyArgsWithoutOclif(['copy', 'a', 'b'], env)).to.not.equal(null)
      fs.mkdirSync(path.join(dir, 'share', 'escp'), { recursive: true })
      fs.writeFileSync(path.join(dir, 'share', 'escp', 'package.json'), '{}')
      expect(copyArgsWithoutOclif(['copy', 'a', 'b'], env)).to.equal(null)
    })
  })
})
