// The client side of a transfer, as a library call. The server is any process that speaks
// the control protocol on its stdio: the loopback child (same code, this host), or
// `ssh host escp server`. Data never goes through that process's pipes: it crosses N
// encrypted TCP streams.
import net from 'node:net'
import { escpError, isEscpError, remoteError } from '../errors'
import type { EscpError } from '../errors'
import { loadPlugins, pluginModules, pluginOptionsFromEnv, pluginsFromEnv } from '../plugins/loader'
import type { PluginSet } from '../plugins/loader'
import { ControlChannel } from '../protocol/control-channel'
import { startClientSession } from '../protocol/session'
import type { Session, SessionRequest } from '../protocol/session'
import type { SourceIssue } from './enumerate'
import { BootedWorkers, bootOf, receivingWrites, startReceiverLinks, startSenderLinks } from './links'
import { discardPrestartedLoopbackServer, loopbackStreams, spawnLoopbackServer } from './loopback-child'
import type { ServerProcess } from './loopback-child'
import { DEFAULT_OPTIONS, splitEngines, withDefaults } from './options'
import { takePrestartedWorkers } from './worker-boot'
import type { TransferOptions } from './options'
import { resolveDestination } from './paths'
import { interruption } from './session-side'
import { Receiver } from './receiver'
import { Sender } from './sender'
import { linkSettings } from './server'
import { streamsFor } from './streams-for'
import type { TransferProgress, TransferSummary } from './summary'

const SOFTWARE = `escp ${(require('../../package.json') as { version: string }).version}`

/** A server already listening on a Unix socket (`escp server --mgmt PATH`). */
export async function connectUnixServer(socketPath: string): Promise<ServerProcess> {
  const socket = await new Promise<import('node:net').Socket>((resolve, reject) => {
    const s = net.connect(socketPath, () => resolve(s))
    s.once('error', (err) => reject(escpError('ESCP_ERR_CONNECT', socketPath, err.message)))
  })
  socket.on('error', () => {})
  const exited = new Promise<number | null>((resolve) => socket.once('close', () => resolve(0)))
  return { stdout: socket, stdin: socket, stderrTail: () => '', exited, kill: () => void socket.destroy() }
}

export interface TransferRequest {
  sources: string[]
  destination: string
  options?: Partial<TransferOptions>
  onProgress?: (p: TransferProgress) => void
  onIssue?: (issue: SourceIssue) => void
  /**
   * Stops the transfer when it aborts: both sides remove the files they have not finished, and
   * the call rejects with the signal's reason where that is an escp error, else
   * ESCP_ERR_INTERRUPTED.
   */
  signal?: AbortSignal
}

export type CopyRequest = TransferRequest

export function sessionRequest(o: TransferOptions, serverRole: 'receiver' | 'sender', paths: string[], sourceCount: number, serverEngine: string): SessionRequest {
  return {
    software: SOFTWARE,
    serverRole,
    ciphers: [o.cipher],
    compressor: o.compressor,
    compressionLevel: o.compressionLevel ?? 3,
    checksum: o.checksum,
    serverEngine,
    blockSizeBytes: o.blockSizeBytes,
    streams: o.streams,
    bindAddress: o.bindAddress,
    port: o.port,
    portRange: o.portRange,
    preserve: o.preserve,
    sparse: o.sparse,
    direct: o.direct,
    recursive: o.recursive,
    paths,
    sourceCount,
    queueDepth: o.queueDepth,
    rateLimit: o.limitBytesPerSec ?? 0,
  }
}

/** Checks every named plugin before anything starts, so a typo fails at once and clearly. */
export function checkPlugins(set: PluginSet, o: TransferOptions): void {
  set.registry.resolve('cipher', o.cipher)
  if (o.checksum !== 'none') set.registry.resolve('checksum', o.checksum)
  if (o.compressor !== 'none') set.registry.resolve('compressor', o.compressor)
  const engines = splitEngines(o.engine)
  set.registry.resolve('engine', engines.sender)
  set.registry.resolve('engine', engines.receiver)
}

interface Prepared {
  o: TransferOptions
  set: PluginSet
  engines: { sender: string; receiver: string }
}

/** `o`: the request's options with the defaults, when the caller has them already. */
async function prepare(request: TransferRequest, o: TransferOptions = withDefaults(request.options)): Promise<Prepared> {
  if (request.sources.length === 0) throw escpError('ESCP_ERR_BAD_ARGUMENT', 'no source was given')
  const set = await loadPlugins({ plugins: [...pluginsFromEnv(), ...o.plugins], options: { ...pluginOptionsFromEnv(), ...o.pluginOptions } })
  checkPlugins(set, o)
  return { o, set, engines: splitEngines(o.engine) }
}

/**
 * Stream workers for this side, booted now so that they load their plugins while the session
 * connects; those the escp command started early, where they boot the same way.
 */
function bootWorkers({ o, set }: Prepared): BootedWorkers {
  const boot = bootOf({ plugins: set.spec, cpus: o.cpus })
  return takePrestartedWorkers(boot) ?? new BootedWorkers(boot, o.streams)
}

/**
 * The streams a sending request asks for: its own, or `most` where its sources make at least as
 * many blocks (fewer for a few small files: streamsFor).
 */
function sendingStreams(request: TransferRequest, most: number): number {
  return request.options?.streams ?? streamsFor(request.sources, request.options?.blockSizeBytes ?? DEFAULT_OPTIONS.blockSizeBytes, most)
}

/**
 * Runs `transfer`; once `signal` has aborted, whatever it fails with (a server that the same
 * Ctrl-C ended before it could stop in order, a closed control channel) is the interruption.
 */
async function interruptible<T>(signal: AbortSignal | undefined, transfer: () => Promise<T>): Promise<T> {
  try {
    return await transfer()
  } catch (err) {
    throw signal?.aborted ? interruption(signal) : err
  }
}

/** Copies `sources` to `destination` on this host, through a loopback child receiver. */
export function copy(request: TransferRequest): Promise<TransferSummary> {
  return interruptible(request.signal, () => copyNow(request))
}

async function copyNow(request: TransferRequest): Promise<TransferSummary> {
  const streams = sendingStreams(request, loopbackStreams())
  const o = withDefaults({ ...request.options, streams, bindAddress: request.options?.bindAddress || '127.0.0.1' })
  // The child starts first: its start-up (a Node process loading its plugins) overlaps this one's.
  const server = spawnLoopbackServer(pluginModules([...pluginsFromEnv(), ...o.plugins]).slice(1), { cpus: o.cpus, logFile: o.serverLogFile, streams: o.streams, pluginOptions: o.pluginOptions })
  const prepared = await beforeSession(server, () => prepare(request, o))
  return pushPrepared(server, prepared, request, '127.0.0.1')
}

/** Sends local `sources` to `destination` on the server's host. */
export function push(server: ServerProcess, request: TransferRequest, serverHost: string): Promise<TransferSummary> {
  return interruptible(request.signal, () => pushNow(server, request, serverHost))
}

async function pushNow(server: ServerProcess, request: TransferRequest, serverHost: string): Promise<TransferSummary> {
  discardPrestartedLoopbackServer()
  const streams = sendingStreams(request, DEFAULT_OPTIONS.streams)
  return pushPrepared(server, await beforeSession(server, () => prepare(request, withDefaults({ ...request.options, streams }))), request, serverHost)
}

/**
 * Runs what must succeed before a session is asked of `server`; if it fails, the server (an ssh
 * that may have asked for a password already) is stopped, not left running.
 */
async function beforeSession<T>(server: ServerProcess, step: () => Promise<T>): Promise<T> {
  try {
    return await step()
  } catch (err) {
    server.kill()
    await server.exited
    throw err
  }
}

async function pushPrepared(server: ServerProcess, prepared: Prepared, request: TransferRequest, serverHost: string): Promise<TransferSummary> {
  const { o, set, engines } = prepared
  return withSession(server, prepared, sessionRequest(o, 'receiver', [request.destination], request.sources.length, engines.receiver), serverHost, async (session, booted) => {
    const links = await startSenderLinks(session, linkSettings(session.init, set, 'client', engines.sender, o.cpus), booted)
    const checksum = o.checksum === 'none' ? null : set.registry.resolve('checksum', o.checksum)
    const engine = set.registry.resolve('engine', engines.sender)
    return new Sender(session, links, { sources: request.sources, recursive: o.recursive, blockSizeBytes: o.blockSizeBytes, checksum, engine, onProgress: request.onProgress, onIssue: request.onIssue, signal: request.signal }).run()
  }, request.signal)
}

/** Fetches `sources` on the server's host into the local `destination`. */
export function pull(server: ServerProcess, request: TransferRequest, serverHost: string): Promise<TransferSummary> {
  return interruptible(request.signal, () => pullNow(server, request, serverHost))
}

async function pullNow(server: ServerProcess, request: TransferRequest, serverHost: string): Promise<TransferSummary> {
  discardPrestartedLoopbackServer()
  const prepared = await beforeSession(server, () => prepare(request))
  const { o, set, engines } = prepared
  // The destination is checked before anything is asked of the server.
  const destination = await beforeSession(server, () => resolveDestination(request.destination, request.sources.length))
  const engine = set.registry.resolve('engine', engines.receiver)
  // Asked while the session is set up.
  const writes = receivingWrites(engine, destination.guard.rootPath, o.direct)
  const started = Date.now()
  return withSession(server, prepared, sessionRequest(o, 'sender', request.sources, request.sources.length, engines.sender), serverHost, async (session, booted) => {
    const checksum = o.checksum === 'none' ? null : set.registry.resolve('checksum', o.checksum)
    const receiver = new Receiver(session, { destination, checksum, engine, blockSizeBytes: o.blockSizeBytes, preserve: o.preserve, onProgress: request.onProgress, signal: request.signal })
    const links = await startReceiverLinks(session, linkSettings(session.init, set, 'client', engines.receiver, o.cpus), await writes, receiver, booted)
    const r = await receiver.run(links)
    return {
      ok: r.failures.length === 0,
      entries: r.entries,
      entriesOk: r.entriesOk,
      failures: r.failures,
      warnings: [],
      bytes: r.bytes,
      holeBytes: r.holeBytes,
      wireBytes: r.wireBytes,
      elapsedMs: Date.now() - started,
      streams: links.length,
      cipher: session.keys.cipher.name,
      checksum: checksum?.name ?? 'none',
      compressor: session.init.compressor,
    }
  }, request.signal)
}

/**
 * Runs a session with `server`. This side's stream workers boot first, so that they load their
 * plugins while the session connects; those `run` does not take are stopped at the end.
 */
async function withSession(
  server: ServerProcess,
  prepared: Prepared,
  request: SessionRequest,
  serverHost: string,
  run: (session: Session, booted: BootedWorkers) => Promise<TransferSummary>,
  signal: AbortSignal | undefined,
): Promise<TransferSummary> {
  const booted = await beforeSession(server, async () => bootWorkers(prepared))
  try {
    return await runSession(server, prepared.set, request, serverHost, (session) => run(session, booted), signal)
  } finally {
    await booted.close()
  }
}

async function runSession(
  server: ServerProcess,
  set: PluginSet,
  request: SessionRequest,
  serverHost: string,
  run: (session: Session) => Promise<TransferSummary>,
  signal: AbortSignal | undefined,
): Promise<TransferSummary> {
  const channel = new ControlChannel(server.stdout, server.stdin, { side: 'client' })
  // Until the session runs, stopping it stops the server: the session's start then fails.
  const stopServer = () => server.kill()
  try {
    if (signal?.aborted) throw interruption(signal)
    signal?.addEventListener('abort', stopServer, { once: true })
    let session: Session
    try {
      session = await startClientSession(channel, set.registry, request, { detachDataStreams: true, serverHost })
    } finally {
      signal?.removeEventListener('abort', stopServer)
    }
    let summary: TransferSummary
    try {
      summary = await run(session)
    } catch (err) {
      throw await preferServerReason(channel, err as EscpError)
    }
    const done = await channel.receive(30_000, "the server's SessionDone")
    if (done.kind === 'fatal') throw remoteError(done.fatal.code, done.fatal.message)
    if (done.kind !== 'done') throw escpError('ESCP_ERR_PROTOCOL', `expected SessionDone, got ${done.kind}`)
    return summary
  } catch (err) {
    server.kill()
    if (signal?.aborted) throw interruption(signal)
    if (isEscpError(err, 'ESCP_ERR_CONTROL_CLOSED') || isEscpError(err, 'ESCP_ERR_REMOTE_NOISE')) {
      await Promise.race([server.exited, new Promise((r) => setTimeout(r, 1000))])
      const said = server.stderrTail()
      if (said) throw escpError('ESCP_ERR_CONTROL_CLOSED', `${(err as EscpError).message.replace(/^ESCP_ERR_\w+: /, '')}; the server said: ${said.split('\n').slice(-3).join(' | ')}`)
    }
    throw err
  } finally {
    channel.close()
    server.stdin.end()
    await server.exited
  }
}

/**
 * When the data plane breaks, the server usually knows why (a full disk, a refused name) and
 * says so on the control channel: wait briefly for that before reporting a bare closed stream.
 */
async function preferServerReason(channel: ControlChannel, err: EscpError): Promise<EscpError> {
  if (!isEscpError(err, 'ESCP_ERR_STREAM_CLOSED')) return err
  try {
    const m = await channel.receive(2000)
    if (m.kind === 'fatal') return remoteError(m.fatal.code, m.fatal.message)
  } catch {
    // No word from the server: the stream error stands.
  }
  return err
}
