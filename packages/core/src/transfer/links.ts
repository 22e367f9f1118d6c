// Starting a session's stream workers and their links on either side.
import type { EnginePath, IoEngine } from '../contracts/io-engine'
import type { Session } from '../protocol/session'
import { tierIfAsked } from './loopback-child'
import { ReceiverLink, SenderLink } from './stream-link'
import type { RecordTargets } from './stream-link'
import { BootedWorkers, BootingWorker, bootOf } from './worker-boot'
import type { StreamSettings, StreamWorkerData } from './worker-protocol'

export { BootedWorkers, bootOf }

export interface LinkSettings extends StreamSettings {
  /** Pacing of each sending stream, bytes per second; 0 for none. */
  rateLimit: number
}

/** How a receiver writes file data, as its log says: what `direct` asked for, as the destination takes it. */
export type DataWrites = 'uncached' | 'O_DIRECT' | 'page cache'

/**
 * How the receiving side writes into the directory `root`. Asked to bypass the page cache
 * (direct), it writes buffered where the engine's buffered writes there go uncached, else with
 * O_DIRECT. Uncached writes measured faster than O_DIRECT on this machine's ext4, for the same
 * CPU: 2 GiB copied in 2.14 s against 3.53 s with posix (5 runs each, taking turns), and 2.22 s
 * against 2.86 s with uring. Where the question cannot be answered (a root not made yet, not
 * writable), O_DIRECT, as before.
 */
export async function receivingWrites(engine: IoEngine, root: EnginePath, direct: boolean): Promise<DataWrites> {
  const uncached = !engine.discards && engine.writesUncached ? await engine.writesUncached(root).catch(() => false) : false
  return uncached ? 'uncached' : direct ? 'O_DIRECT' : 'page cache'
}

function workerData(session: Session, s: LinkSettings, role: 'sender' | 'receiver', index: number, send: StreamWorkerData['send'], receive: StreamWorkerData['receive']): StreamWorkerData {
  const { rateLimit: _paced, ...settings } = s
  return {
    ...settings,
    role,
    index,
    secret: session.keys.secret,
    sessionId: session.keys.sessionId,
    cipher: session.keys.cipher.name,
    send,
    receive,
  }
}

async function startAll<T>(session: Session, make: (i: number) => Promise<T>, close: (t: T) => Promise<void>): Promise<T[]> {
  const started = await Promise.allSettled(session.data.map((_, i) => make(i)))
  const failed = started.find((r) => r.status === 'rejected')
  if (failed) {
    await Promise.all(started.map((r) => (r.status === 'fulfilled' ? close(r.value) : undefined)))
    throw (failed as PromiseRejectedResult).reason
  }
  // The workers are up, and escp's start-up over: its code may now tier for the transfer.
  tierIfAsked()
  return started.map((r) => (r as PromiseFulfilledResult<T>).value)
}

export function startSenderLinks(session: Session, s: LinkSettings, booted?: BootedWorkers): Promise<SenderLink[]> {
  return startAll(
    session,
    async (i) => {
      const d = session.data[i].detach()
      const worker = await (booted?.take(s) ?? new BootingWorker(bootOf(s))).start(workerData(session, s, 'sender', d.index, d.send, d.receive))
      return new SenderLink(d, worker, s.queueDepth, s.blockSizeBytes, s.rateLimit)
    },
    (l) => l.close(),
  )
}

/** `writes`: receivingWrites for the destination; its workers use O_DIRECT only for 'O_DIRECT'. */
export function startReceiverLinks(session: Session, settings: LinkSettings, writes: DataWrites, targets: RecordTargets, booted?: BootedWorkers): Promise<ReceiverLink[]> {
  const s = { ...settings, direct: writes === 'O_DIRECT' }
  return startAll(
    session,
    async (i) => {
      const d = session.data[i].detach()
      const worker = await (booted?.take(s) ?? new BootingWorker(bootOf(s))).start(workerData(session, s, 'receiver', d.index, d.send, d.receive))
      return new ReceiverLink(d, worker, s.blockSizeBytes, s.queueDepth, targets)
    },
    (l) => l.close(),
  )
}
