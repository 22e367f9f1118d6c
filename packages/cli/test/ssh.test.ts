// The remote command escp gives ssh: the server, its log file, and the streams to come.
import { expect } from 'chai'
import { remoteCommand } from '../src/ssh'
import type { SshOptions } from '../src/ssh'

const base: SshOptions = { program: 'ssh', agent: false, ipv4: false, ipv6: false, batch: false, options: [], remoteEscp: 'escp', verbose: 0 }

describe('the remote command', function () {
  it('starts escp server through env, telling it how many streams come', function () {
    expect(remoteCommand({ ...base, streams: 4 })).to.equal('env ESCP_BOOT_STREAMS=4 escp server')
    expect(remoteCommand({ ...base, streams: 8, remoteEscp: '/opt/escp tools/bin/escp', remoteLogFile: "/tmp/it's.log.server" })).to.equal(
      `env ESCP_BOOT_STREAMS=8 '/opt/escp tools/bin/escp' server --logfile '/tmp/it'\\''s.log.server'`,
    )
  })

  it('leaves env out where it would misread the server path, or nothing is to be told', function () {
    expect(remoteCommand({ ...base, streams: 4, remoteEscp: '/opt/a=b/escp' })).to.equal('/opt/a=b/escp server')
    expect(remoteCommand({ ...base, streams: 4, remoteEscp: '-escp' })).to.equal('-escp server')
    expect(remoteCommand(base)).to.equal('escp server')
  })
})
