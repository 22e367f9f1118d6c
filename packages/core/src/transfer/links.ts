// Starting a session's stream workers and their links on either side.
import type { Session } from '../protocol/session'
import { ReceiverLink, SenderLink } from './stream-link'
import type { RecordTargets } from './stream-link'
import { BootedWorkers, BootingWorker, bootOf } from './worker-boot'
import type { StreamSettings, StreamWorkerData } from './worker-protocol'

export { BootedWorkers, bootOf }

export interface LinkSettings extends StreamSettings {
  /** Pacing of each sending stream, bytes per second; 0 for none. */
  rateLimit: number
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

export function startReceiverLinks(session: Session, s: LinkSettings, targets: RecordTargets, booted?: BootedWorkers): Promise<ReceiverLink[]> {
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
