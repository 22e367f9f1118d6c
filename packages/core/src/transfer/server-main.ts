// Entry point of a server process speaking the control protocol on stdin/stdout: the loopback
// child, and what `escp server` runs on a remote host. Diagnostics go to stderr only; stdout
// belongs to the protocol.
import 'reflect-metadata'
import { isEscpError } from '../errors'
import { loadPlugins, pluginsFromEnv } from '../plugins/loader'
import { ControlChannel } from '../protocol/control-channel'
import { serveSession } from './server'

export async function runServerOnStdio(software: string): Promise<number> {
  const channel = new ControlChannel(process.stdin, process.stdout, { side: 'server' })
  try {
    const set = await loadPlugins({ plugins: pluginsFromEnv() })
    await serveSession(channel, set, { software, defaultAddress: process.env.ESCP_BIND ?? sshServerAddress() ?? '127.0.0.1' })
    return 0
  } catch (err) {
    process.stderr.write(`escp server: ${isEscpError(err) ? err.message : String(err)}\n`)
    return 1
  } finally {
    channel.close()
  }
}

// Under sshd, the address the client reached us on is the third field of SSH_CONNECTION:
// listening there, not on every interface, keeps the data port off other networks.
function sshServerAddress(): string | undefined {
  const parts = process.env.SSH_CONNECTION?.split(' ')
  return parts && parts.length === 4 ? parts[2] : undefined
}

if (require.main === module) {
  const { version } = require('../../package.json') as { version: string }
  runServerOnStdio(`escp ${version}`).then((code) => {
    process.exitCode = code
    process.stdin.destroy()
  })
}
