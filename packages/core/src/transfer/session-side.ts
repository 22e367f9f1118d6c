// What the sending and the receiving side of a session share: one fatal error that stops
// everything, an ordered queue of meta-stream sends, and a wait that any event can end.
import { escpError, isEscpError } from '../errors'
import type { EscpError } from '../errors'
import type { Session } from '../protocol/session'

/** Most items in one batch of a meta record (verdicts, completions). */
const BATCH_ITEMS = 256
/** How long the first item of a batch waits for others. */
const BATCH_DELAY_MS = 5

/**
 * Items that travel together in one meta record: sent once BATCH_ITEMS have gathered, or
 * BATCH_DELAY_MS after the first. Files finish one by one, so a batch per turn of the event loop
 * held one or two: a record sealed, written, read and opened per small file.
 */
export class MetaBatch<T> {
  private items: T[] = []
  private timer: NodeJS.Timeout | null = null

  constructor(private readonly send: (items: T[]) => void) {}

  add(item: T): void {
    this.items.push(item)
    if (this.items.length >= BATCH_ITEMS) this.flush()
    else this.timer ??= setTimeout(() => this.flush(), BATCH_DELAY_MS)
  }

  /** Sends what has gathered, now. */
  flush(): void {
    if (this.timer) clearTimeout(this.timer)
    this.timer = null
    if (this.items.length === 0) return
    const items = this.items
    this.items = []
    this.send(items)
  }
}

export abstract class SessionSide<Link extends { fail(err: EscpError): void; readonly error: EscpError | undefined }> {
  protected fatal: EscpError | undefined
  protected links: Link[] = []
  private wake: (() => void) | undefined
  private metaChain: Promise<void> = Promise.resolve()

  constructor(protected readonly session: Session) {}

  /** Sends on the meta stream after everything queued before; a failure aborts the session. */
  protected queueMeta(send: () => Promise<void>): void {
    this.metaChain = this.metaChain.then(() => (this.fatal ? undefined : send()))
    this.metaChain.catch((e: EscpError) => this.abort(e))
  }

  /** Resolves once every queued meta send is written. */
  protected metaSent(): Promise<void> {
    return this.metaChain
  }

  /**
   * Stops the session once `signal` aborts (at once if it has), with its reason where that is
   * an escp error, else ESCP_ERR_INTERRUPTED; until the function returned is called.
   */
  protected stopOn(signal: AbortSignal | undefined): () => void {
    if (!signal) return () => {}
    const stop = () => this.abort(interruption(signal))
    if (signal.aborted) stop()
    signal.addEventListener('abort', stop, { once: true })
    return () => signal.removeEventListener('abort', stop)
  }

  protected abort(err: EscpError): void {
    if (this.fatal) return
    this.fatal = err
    for (const l of this.links) l.fail(err)
    this.session.meta.destroy(err)
    this.poke()
  }

  /**
   * Fails the session for a link that failed before this side listened to it: a stream's first
   * records are read as its link is made, and its 'error' then had no one to hear it.
   */
  protected noticeEarlyFailures(): void {
    const failed = this.links.find((l) => l.error)
    if (failed?.error) this.abort(failed.error)
  }

  protected check(): void {
    if (this.fatal) throw this.fatal
  }

  /** Waits for the next event (a link message, a verdict, an abort). */
  protected sleep(): Promise<void> {
    this.check()
    return new Promise((resolve) => (this.wake = resolve))
  }

  protected poke(): void {
    const w = this.wake
    this.wake = undefined
    w?.()
  }
}

/** The error a transfer stopped by `signal` fails with. */
export function interruption(signal: AbortSignal): EscpError {
  const reason: unknown = signal.reason
  return isEscpError(reason) ? reason : escpError('ESCP_ERR_INTERRUPTED', typeof reason === 'string' ? reason : 'its caller')
}
