// Starting a session's stream workers and their links on either side.
import type { Session } from '../protocol/session'
import { BootingWorker, ReceiverLink, SenderLink } from './stream-link'
import type { RecordTargets } from './stream-link'
import type { StreamSettings, StreamWorkerData, WorkerBoot } from './worker-protocol'

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

/**
 * Stream workers booted before their session is set up, one per stream it asks for: they load
 * their plugins while the session connects (on 2 cores, while the other side starts up). A
 * session takes one per stream; close() stops those it did not take.
 */
export class BootedWorkers {
  private readonly idle: BootingWorker[]
  /** The boot as JSON: plain data, so the same plugins and CPUs make the same text. */
  private readonly bootKey: string

  constructor(boot: WorkerBoot, count: number) {
    this.bootKey = JSON.stringify(boot)
    this.idle = []
    try {
      for (let i = 0; i < count; i++) this.idle.push(new BootingWorker(boot))
    } catch (err) {
      // A thread that cannot be made (a limit reached) must not leave those made running.
      for (const w of this.idle.splice(0)) void w.terminate()
      throw err
    }
  }

  /** A booted worker for `settings`, or a new one where none is left or they boot otherwise. */
  take(settings: LinkSettings): BootingWorker {
    const boot = bootOf(settings)
    return (JSON.stringify(boot) === this.bootKey ? this.idle.shift() : undefined) ?? new BootingWorker(boot)
  }

  async close(): Promise<void> {
    await Promise.all(this.idle.splice(0).map((w) => w.terminate()))
  }
}

/** What a stream's worker boots with, for these settings. */
export function bootOf(s: Pick<StreamSettings, 'plugins' | 'cpus'>): WorkerBoot {
  return { plugins: s.plugins, ...(s.cpus ? { cpus: s.cpus } : {}) }
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
