// The control channel: ssh's stdio (or a child's, or a Unix socket) carrying length-prefixed
// flatbuffers messages. The server speaks first with a fixed preamble, so the client can tell
// escp's output from text a remote shell startup file printed before escp ran.
import type { Readable, Writable } from 'node:stream'
import { escpError, isEscpError } from '../errors'
import type { EscpError } from '../errors'
import { CONTROL_PREAMBLE, MAX_CONTROL_FRAME_BYTES } from './constants'
import { decodeControl, encodeControl } from './messages'
import type { ControlMessage } from './messages'

export interface ControlChannelOptions {
  /** The server writes the preamble; the client expects it. */
  side: 'client' | 'server'
}

export class ControlChannel {
  private buffered: Buffer = Buffer.alloc(0)
  private preambleSeen: boolean
  private readonly queue: ControlMessage[] = []
  private waiter: { resolve: (m: ControlMessage) => void; reject: (e: Error) => void } | undefined
  private failure: EscpError | undefined
  private stopped: EscpError | undefined
  private readonly onData = (chunk: Buffer) => this.receiveBytes(chunk)
  private readonly onEnd = () =>
    this.fail(escpError('ESCP_ERR_CONTROL_CLOSED', this.preambleSeen ? 'the peer closed it' : `the peer closed it before escp started${this.buffered.byteLength ? ` (it printed ${JSON.stringify(this.buffered.toString('utf8').slice(0, 200))})` : ''}`))

  constructor(
    private readonly input: Readable,
    private readonly output: Writable,
    options: ControlChannelOptions,
  ) {
    this.preambleSeen = options.side === 'server'
    input.on('data', this.onData)
    input.on('end', this.onEnd)
    input.on('error', this.onEnd)
    // A socket destroyed here (a --mgmt connection its client stops) ends with 'close' alone.
    input.on('close', this.onEnd)
    output.on('error', () => this.fail(escpError('ESCP_ERR_CONTROL_CLOSED', 'writing to the peer failed')))
    if (options.side === 'server') output.write(CONTROL_PREAMBLE)
  }

  async send(msg: ControlMessage): Promise<void> {
    if (this.failure) throw this.failure
    const body = encodeControl(msg)
    const frame = Buffer.allocUnsafe(4 + body.byteLength)
    frame.writeUInt32BE(body.byteLength, 0)
    frame.set(body, 4)
    await new Promise<void>((resolve, reject) => this.output.write(frame, (err) => (err ? reject(escpError('ESCP_ERR_CONTROL_CLOSED', err.message)) : resolve())))
  }

  /** The next message; rejects on a malformed frame, a closed channel or the deadline. */
  receive(timeoutMs?: number, what = 'a control message'): Promise<ControlMessage> {
    if (this.stopped) return Promise.reject(this.stopped)
    const m = this.queue.shift()
    if (m) return Promise.resolve(m)
    if (this.failure) return Promise.reject(this.failure)
    return new Promise((resolve, reject) => {
      const timer = timeoutMs === undefined ? undefined : setTimeout(() => {
        this.waiter = undefined
        reject(escpError('ESCP_ERR_TIMEOUT', what, timeoutMs))
      }, timeoutMs)
      this.waiter = {
        resolve: (v) => (clearTimeout(timer), resolve(v)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      }
    })
  }

  /**
   * Stops receiving: a receive under way rejects with `err`, and so does every later one.
   * Sending goes on, so that the peer can still be told why.
   */
  stop(err: EscpError): void {
    this.stopped ??= err
    const w = this.waiter
    this.waiter = undefined
    w?.reject(this.stopped)
  }

  /** Stops reading (the streams themselves are the caller's). */
  close(): void {
    this.input.off('data', this.onData)
    this.input.off('end', this.onEnd)
    this.input.off('error', this.onEnd)
    this.input.off('close', this.onEnd)
    if (!this.failure) this.failure = escpError('ESCP_ERR_CONTROL_CLOSED', 'closed locally')
  }

  private receiveBytes(chunk: Buffer): void {
    if (this.failure) return
    this.buffered = this.buffered.byteLength ? Buffer.concat([this.buffered, chunk]) : chunk
    try {
      if (!this.preambleSeen) {
        const at = this.buffered.indexOf(CONTROL_PREAMBLE)
        if (at < 0) {
          // Whatever arrives before the preamble is not escp's; a little is kept to show the user.
          if (this.buffered.byteLength > 4096) throw escpError('ESCP_ERR_REMOTE_NOISE', this.buffered.toString('utf8', 0, 200))
          return
        }
        if (at > 0) throw escpError('ESCP_ERR_REMOTE_NOISE', this.buffered.toString('utf8', 0, Math.min(at, 200)))
        this.buffered = this.buffered.subarray(CONTROL_PREAMBLE.byteLength)
        this.preambleSeen = true
      }
      while (this.buffered.byteLength >= 4) {
        const len = this.buffered.readUInt32BE(0)
        if (len > MAX_CONTROL_FRAME_BYTES) throw escpError('ESCP_ERR_PROTOCOL', `a control frame of ${len} bytes (limit ${MAX_CONTROL_FRAME_BYTES})`)
        if (this.buffered.byteLength < 4 + len) break
        const msg = decodeControl(this.buffered.subarray(4, 4 + len))
        this.buffered = this.buffered.subarray(4 + len)
        const w = this.waiter
        if (w) {
          this.waiter = undefined
          w.resolve(msg)
        } else {
          this.queue.push(msg)
        }
      }
    } catch (err) {
      this.fail(isEscpError(err) ? err : escpError('ESCP_ERR_PROTOCOL', String(err)))
    }
  }

  private fail(err: EscpError): void {
    if (this.failure) return
    this.failure = err
    const w = this.waiter
    this.waiter = undefined
    w?.reject(err)
  }
}
