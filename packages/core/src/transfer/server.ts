// The server side of a session, as `escp server` runs it on a remote host or as the loopback
// child: it answers the handshake on the control channel, then receives (push) or sends (pull)
// over the data plane, and reports the outcome in SessionDone.
import { escpError, isEscpError } from '../errors'
import type { EscpError } from '../errors'
import type { PluginSet } from '../plugins/loader'
import type { ControlChannel } from '../protocol/control-channel'
import type { SessionInit } from '../protocol/messages'
import { acceptServerSession } from '../protocol/session'
import { BootedWorkers, bootOf, receivingWrites, startReceiverLinks, startSenderLinks } from './links'
import type { DataWrites, LinkSettings } from './links'
import { resolveDestination } from './paths'
import type { Destination } from './paths'
import { Receiver } from './receiver'
import { Sender } from './sender'
import { splitEngines } from './options'
import type { SessionLog } from './session-log'

export interface ServeOptions {
  software: string
  /** Address to listen on when the client names none. */
  defaultAddress: string
  /** CPUs this side's stream workers run on (this host's own setting; never sent). */
  cpus?: readonly number[]
  /** This side's log: the session's settings, each failed file, the outcome. */
  log?: SessionLog
  /** Stream workers booted before the session's request came; whoever booted them closes them. */
  booted?: BootedWorkers
  /** Stops the session when it aborts (a signal to the server): unfinished files are removed. */
  signal?: AbortSignal
}

export function linkSettings(init: SessionInit, set: PluginSet, side: 'client' | 'server', engine: string, cpus?: readonly number[]): LinkSettings {
  return {
    ...(cpus ? { cpus } : {}),
    plugins: set.spec,
    side,
    engine,
    checksum: init.checksum,
    compressor: init.compressor,
    compressionLevel: init.compressionLevel,
    blockSizeBytes: init.blockSizeBytes,
    queueDepth: init.queueDepth,
    sparse: init.sparse,
    direct: init.direct,
    rateLimit: init.rateLimit,
  }
}

/** Serves one session on `channel`. Resolves when it is over; rejects with its error. */
export async function serveSession(channel: ControlChannel, set: PluginSet, options: ServeOptions): Promise<void> {
  let own: BootedWorkers | undefined
  try {
    await serve(channel, set, options, (streams) => options.booted ?? (own ??= new BootedWorkers(bootOf({ plugins: set.spec, cpus: options.cpus }), streams)))
  } finally {
    await own?.close()
  }
}

/** `boot` is called once the session's request is accepted, to start its stream workers early. */
async function serve(channel: ControlChannel, set: PluginSet, options: ServeOptions, boot: (streams: number) => BootedWorkers): Promise<void> {
  let destination: Destination | undefined
  let writes: Promise<DataWrites> | undefined
  let booted: BootedWorkers | undefined
  const session = await acceptServerSession(channel, set.registry, {
    software: options.software,
    defaultAddress: options.defaultAddress,
    detachDataStreams: true,
    validate: async (init) => {
      set.registry.resolve('engine', init.serverEngine)
      if (init.paths.length === 0) throw escpError('ESCP_ERR_BAD_ARGUMENT', 'no path was given')
      if (init.serverRole === 'receiver') {
        destination = await resolveDestination(init.paths[0], init.sourceCount)
        // Asked while the data streams connect.
        writes = receivingWrites(set.registry.resolve('engine', init.serverEngine), destination.guard.rootPath, init.direct)
      }
      // The workers load their plugins while the data streams connect.
      booted = boot(init.streams)
    },
  })
  const init = session.init
  const settings = linkSettings(init, set, 'server', init.serverEngine, options.cpus)
  const checksum = init.checksum === 'none' ? null : set.registry.resolve('checksum', init.checksum)
  const log = options.log
  const started = Date.now()
  const dataWrites = writes ? await writes : undefined
  log?.info(
    {
      client: init.software,
      role: init.serverRole,
      paths: init.paths,
      ...(dataWrites ? { writes: dataWrites } : {}),
      cipher: session.keys.cipher.name,
      checksum: init.checksum,
      compressor: init.compressor,
      engine: set.registry.resolve('engine', init.serverEngine).name,
      streams: session.data.length,
      blockSizeBytes: init.blockSizeBytes,
      ...(options.cpus ? { cpus: options.cpus } : {}),
    },
    'session started',
  )
  const ended = (r: { filesOk: number; failures: { path: string; error: EscpError }[]; bytes: number }) => {
    for (const f of r.failures) log?.warn({ path: f.path, code: f.error.code, errno: f.error.errno, error: f.error.message }, 'file failed')
    log?.info({ filesOk: r.filesOk, filesFailed: r.failures.length, bytes: r.bytes, elapsedMs: Date.now() - started }, 'session done')
  }
  try {
    if (init.serverRole === 'receiver') {
      const receiver = new Receiver(session, {
        destination: destination as Destination,
        checksum,
        engine: set.registry.resolve('engine', init.serverEngine),
        blockSizeBytes: init.blockSizeBytes,
        preserve: init.preserve,
        signal: options.signal,
      })
      const links = await startReceiverLinks(session, settings, dataWrites as DataWrites, receiver, booted)
      const r = await receiver.run(links)
      ended({ filesOk: r.entriesOk, failures: r.failures, bytes: r.bytes })
      await channel.send({ kind: 'done', done: { ok: r.failed === 0, filesOk: BigInt(r.entriesOk), filesFailed: BigInt(r.failed), bytes: BigInt(r.bytes) } })
    } else {
      const links = await startSenderLinks(session, settings, booted)
      const engine = set.registry.resolve('engine', init.serverEngine)
      const s = await new Sender(session, links, { sources: init.paths, recursive: init.recursive, blockSizeBytes: init.blockSizeBytes, checksum, engine, signal: options.signal }).run()
      ended({ filesOk: s.entriesOk, failures: s.failures, bytes: s.bytes })
      await channel.send({ kind: 'done', done: { ok: s.ok, filesOk: BigInt(s.entriesOk), filesFailed: BigInt(s.failures.length), bytes: BigInt(s.bytes) } })
    }
  } catch (err) {
    const e: EscpError = isEscpError(err) ? err : escpError('ESCP_ERR_TRANSFER', String(err))
    log?.error({ code: e.code, error: e.message, elapsedMs: Date.now() - started }, 'session failed')
    await channel.send({ kind: 'fatal', fatal: { code: e.code, message: e.message } }).catch(() => {})
    throw e
  }
}

export { splitEngines }
