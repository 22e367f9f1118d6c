// Which `escp server` command lines the entry point serves without oclif.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { expect } from 'chai'
import { serverFlagsWithoutOclif } from '../src/server-start'

describe('escp server without oclif', function () {
  let data: string
  let env: NodeJS.ProcessEnv

  beforeEach(function () {
    data = fs.mkdtempSync(path.join(os.tmpdir(), 'escp-server-start-'))
    // A data directory of oclif's with nothing installed in it.
    env = { HOME: data, XDG_DATA_HOME: path.join(data, 'share') }
  })

  afterEach(function () {
    fs.rmSync(data, { recursive: true, force: true })
  })

  it('serves the command lines ssh and --mgmt start', function () {
    expect(serverFlagsWithoutOclif(['server'], env)).to.deep.equal({})
    expect(serverFlagsWithoutOclif(['server', '--logfile', '/tmp/a b.server'], env)).to.deep.equal({ logfile: '/tmp/a b.server' })
    expect(serverFlagsWithoutOclif(['server', '--logfile=x.server', '--mgmt', '/tmp/s'], env)).to.deep.equal({ logfile: 'x.server', mgmt: '/tmp/s' })
  })

  it('leaves to oclif anything else: help, other flags, a flag twice or without its value, another command', function () {
    for (const args of [
      ['server', '--help'],
      ['server', '-h'],
      ['server', '--verbose'],
      ['server', 'extra'],
      ['server', '--logfile'],
      ['server', '--logfile='],
      ['server', '--mgmt', 'a', '--mgmt', 'b'],
      ['copy', 'a', 'b'],
    ]) {
      expect(serverFlagsWithoutOclif(args, env), args.join(' ')).to.equal(null)
    }
  })

  it('leaves to oclif a host where a plugin may be installed through it', function () {
    for (const dir of [path.join(data, 'share', 'escp'), path.join(data, 'own')]) {
      fs.mkdirSync(dir, { recursive: true })
      fs.writeFileSync(path.join(dir, 'package.json'), '{"oclif":{"plugins":[]}}')
    }
    expect(serverFlagsWithoutOclif(['server'], env), 'XDG_DATA_HOME/escp').to.equal(null)
    fs.rmSync(path.join(data, 'share'), { recursive: true })
    expect(serverFlagsWithoutOclif(['server'], env)).to.deep.equal({})
    expect(serverFlagsWithoutOclif(['server'], { ...env, ESCP_DATA_DIR: path.join(data, 'own') }), 'ESCP_DATA_DIR').to.equal(null)
    fs.mkdirSync(path.join(data, '.local', 'share', 'escp'), { recursive: true })
    fs.writeFileSync(path.join(data, '.local', 'share', 'escp', 'package.json'), '{}')
    expect(serverFlagsWithoutOclif(['server'], { HOME: data }), '~/.local/share/escp').to.equal(null)
  })
})
