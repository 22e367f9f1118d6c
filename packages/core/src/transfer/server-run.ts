// A server process speaking the control protocol on stdin/stdout (or a Unix socket): the
// loopback child (whose entry point is server-main), and what `escp server` runs on a remote
// host. Diagnostics go to stderr only; stdout belongs to the protocol.
import 'reflect-metadata'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import type { Readable, Writable } from 'node:stream'
import { escpError, isEscpError } from '../errors'
import { loadPlugins, pluginOptionsFromEnv, pluginsFromEnv } from '../plugins/loader'
import { ControlChannel } from '../protocol/control-channel'
import { CPUMASK_ENV, parseCpuSet } from './affinity'
import { serveSession } from './server'
import type { SessionLog } from './session-log'
import { serverWorkers } from './worker-boot'
import type { BootedWorkers } from './worker-boot'

export interface ServerRunOptions {
  /** The server side's log (`escp server --logfile`; ESCP_LOGFILE for a loopback child). */
  log?: SessionLog
  /** Stream workers started already (bootFromEnv), for the session to take; else those prestartServerWorkers started, or bootFromEnv's. */
  booted?: BootedWorkers
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
  let booted: BootedWorkers | undefined = options.booted
  const stop = stopOnSignals(channel)
  try {
    const mask = process.env[CPUMASK_ENV]
    const cpus = mask ? parseCpuSet(mask) : undefined
    const wanted = [...pluginsFromEnv(), ...plugins]
    const pluginOptions = pluginOptionsFromEnv()
    booted ??= serverWorkers(plugins)
    const set = await loadPlugins({ plugins: wanted, options: pluginOptions })
    await serveSession(channel, set, { software, defaultAddress: process.env.ESCP_BIND ?? sshServerAddress() ?? '127.0.0.1', ...(cpus ? { cpus } : {}), ...(options.log ? { log: options.log } : {}), ...(booted ? { booted } : {}), signal: stop.signal })
    return 0
  } catch (err) {
    const message = isEscpError(err) ? err.message : String(err)
    // Failures inside a session are logged by serveSession; this catches the rest too (a refused handshake).
    options.log?.error({ code: (err as { code?: string }).code, error: message }, 'server failed')
    process.stderr.write(`escp server: ${message}\n`)
    return 1
  } finally {
    stop.dispose()
    channel.close()
    await booted?.close()
  }
}

/** Signals that stop a server: the loopback child's parent and ssh's sshd stop it with SIGTERM; a terminal's Ctrl-C or hang-up reach it too. */
const STOP_SIGNALS: readonly NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP']

/**
 * How long a stopped server may take to end in order (remove its temporary files, tell the
 * client why) before it exits anyway: whoever stopped it waits for it to exit.
 */
const STOP_GRACE_MS = 10_000

/**
 * While a session is served, a stop signal ends it in order rather than at once: the session
 * stops (its receiver removes the files it has not finished) and, before the session runs, the
 * control channel fails, which ends the handshake. The process exits STOP_GRACE_MS later at the
 * latest, whatever is still under way. Another signal changes nothing.
 */
function stopOnSignals(channel: ControlChannel): { signal: AbortSignal; dispose(): void } {
  const controller = new AbortController()
  const stop = (name: NodeJS.Signals) => {
    if (controller.signal.aborted) return
    const err = escpError('ESCP_ERR_INTERRUPTED', name)
    controller.abort(err)
    channel.stop(err)
    setTimeout(() => process.exit(128 + (os.constants.signals[name] ?? 15)), STOP_GRACE_MS).unref()
  }
  for (const name of STOP_SIGNALS) process.on(name, stop)
  return { signal: controller.signal, dispose: () => STOP_SIGNALS.forEach((name) => process.off(name, stop)) }
}

// Under sshd, the address the client reached us on is the third field of SSH_CONNECTION:
// listening there, not on every interface, keeps the data port off other networks.
function sshServerAddress(): string | undefined {
  const parts = process.env.SSH_CONNECTION?.split(' ')
  return parts && parts.length === 4 ? parts[2] : undefined
}
