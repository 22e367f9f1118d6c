// Entry point of a server process speaking the control protocol on stdin/stdout: the loopback
// child, and what `escp server` runs on a remote host. Diagnostics go to stderr only; stdout
// belongs to the protocol.
import 'reflect-metadata'
import fs from 'node:fs'
import net from 'node:net'
import { setFlagsFromString } from 'node:v8'
import type { Readable, Writable } from 'node:stream'
import { escpError, isEscpError } from '../errors'
import { loadPlugins, pluginModules, pluginOptionsFromEnv, pluginsFromEnv } from '../plugins/loader'
import { MAX_DATA_STREAMS } from '../protocol/constants'
import { BOOT_STREAMS_ENV } from '../env-names'
import { V8_FLAGS } from './loopback-child'
import { BootedWorkers, bootOf } from './links'
import { ControlChannel } from '../protocol/control-channel'
import { CPUMASK_ENV, parseCpuSet } from './affinity'
import { serveSession } from './server'
import { LOGFILE_ENV, openSessionLog } from './session-log'
import type { SessionLog } from './session-log'

export interface ServerRunOptions {
  /** The server side's log (`escp server --logfile`; ESCP_LOGFILE for a loopback child). */
  log?: SessionLog
}

export async function runServerOnStdio(software: string, plugins: readonly string[] = [], options: ServerRunOptions = {}): Promise<number> {
  return runServerOn(process.stdin, process.stdout, software, plugins, options)
}

/**
 * Serves one session with the control channel on a Unix socket at `socketPath` (EScp's
 * --mgmt): both ends can then run under a debugger. The socket is created mode 0600 and
 * removed afterwards; an existing file there is an error, not something to replace.
 */
export async function runServerOnUnixSocket(socketPath: string, software: string, plugins: readonly string[] = [], options: ServerRunOptions = {}): Promise<number> {
  const server = net.createServer()
  // The umask makes the socket 0600 from its creation: no window in which others may connect.
  const umask = process.umask(0o177)
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(socketPath, () => resolve())
    })
  } catch (err) {
    process.stderr.write(`escp server: ${escpError('ESCP_ERR_BIND', socketPath, (err as Error).message).message}\n`)
    return 1
  } finally {
    process.umask(umask)
  }
  try {
    const socket = await new Promise<net.Socket>((resolve) => server.once('connection', resolve))
    server.close()
    const code = await runServerOn(socket, socket, software, plugins, options)
    socket.end()
    return code
  } finally {
    server.close()
    fs.rmSync(socketPath, { force: true })
  }
}

async function runServerOn(input: Readable, output: Writable, software: string, plugins: readonly string[], options: ServerRunOptions): Promise<number> {
  const channel = new ControlChannel(input, output, { side: 'server' })
  let booted: BootedWorkers | undefined
  try {
    const mask = process.env[CPUMASK_ENV]
    const cpus = mask ? parseCpuSet(mask) : undefined
    const wanted = [...pluginsFromEnv(), ...plugins]
    const pluginOptions = pluginOptionsFromEnv()
    // Told how many streams are coming (the loopback child is), the workers boot alongside this
    // process's own start-up; a session that turns out otherwise starts its own.
    const streams = Number(process.env[BOOT_STREAMS_ENV])
    if (Number.isInteger(streams) && streams >= 1 && streams <= MAX_DATA_STREAMS) {
      booted = new BootedWorkers(bootOf({ plugins: { modules: pluginModules(wanted), options: pluginOptions }, cpus }), streams)
    }
    const set = await loadPlugins({ plugins: wanted, options: pluginOptions })
    await serveSession(channel, set, { software, defaultAddress: process.env.ESCP_BIND ?? sshServerAddress() ?? '127.0.0.1', ...(cpus ? { cpus } : {}), ...(options.log ? { log: options.log } : {}), ...(booted ? { booted } : {}) })
    return 0
  } catch (err) {
    const message = isEscpError(err) ? err.message : String(err)
    // Failures inside a session are logged by serveSession; this catches the rest too (a refused handshake).
    options.log?.error({ code: (err as { code?: string }).code, error: message }, 'server failed')
    process.stderr.write(`escp server: ${message}\n`)
    return 1
  } finally {
    channel.close()
    await booted?.close()
  }
}

// Under sshd, the address the client reached us on is the third field of SSH_CONNECTION:
// listening there, not on every interface, keeps the data port off other networks.
function sshServerAddress(): string | undefined {
  const parts = process.env.SSH_CONNECTION?.split(' ')
  return parts && parts.length === 4 ? parts[2] : undefined
}

if (require.main === module) {
  // The loopback child tiers its code as the escp command does (V8_FLAGS says why); set here
  // rather than on its command line, which a Node without one of them would refuse.
  for (const flag of V8_FLAGS) setFlagsFromString(flag)
  const { version } = require('../../package.json') as { version: string }
  const logFile = process.env[LOGFILE_ENV]
  const log = logFile ? openSessionLog(logFile) : undefined
  runServerOnStdio(`escp ${version}`, [], log ? { log } : {}).then((code) => {
    process.exitCode = code
    process.stdin.destroy()
  })
}
