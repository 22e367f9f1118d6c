// What the sending and the receiving side of a session share: one fatal error that stops
// everything, an ordered queue of meta-stream sends, and a wait that any event can end.
import type { EscpError } from '../errors'
import type { Session } from '../protocol/session'

export abstract class SessionSide<Link extends { fail(err: EscpError): void }> {
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

  protected abort(err: EscpError): void {
    if (this.fatal) return
    this.fatal = err
    for (const l of this.links) l.fail(err)
    this.session.meta.destroy(err)
    this.poke()
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
