// One authenticated, encrypted TCP stream of a session (the meta stream or a data stream).
// It seals what it sends, opens what it receives, and turns every way a peer or network can
// misbehave (altered, replayed or truncated records, a close mid-record, silence during the
// hello) into one ESCP_ERR_* error, after which the socket is destroyed.
import type net from 'node:net'
import { escpError, isEscpError } from '../errors'
import type { EscpError } from '../errors'
import { HELLO_TIMEOUT_MS, PROTOCOL_MAJOR, RecordType, STREAM_MAGIC, STREAM_PREFIX_BYTES } from './constants'
import type { Direction, SessionKeys } from './keys'
import { RecordOpener, RecordSealer } from './record-crypto'
import { RecordDecoder } from './record-decoder'
import type { RecordFrame } from './record-decoder'
import type { DirectionPosition } from './record-crypto'
import type { RecordHeader } from './record-header'

export interface IncomingRecord {
  type: RecordType
  flags: number
  rawLength: number
  fileId: bigint
  offset: bigint
  payload: Uint8Array
}

export type OutgoingHeader = Omit<RecordHeader, 'length'>

export interface SecureStreamOptions {
  index: number
  keys: SessionKeys
  /** The client opened the connection; its records travel c2s. */
  side: 'client' | 'server'
  blockSizeBytes: number
  /** Records buffered before the socket is paused. */
  highWaterRecords?: number
  /**
   * Open only the HELLO; keep later records sealed for detach(), so that a worker thread can
   * take the stream over with its key schedule.
   */
  detachAfterHello?: boolean
}

/** A stream handed over after its hello: the socket, both key positions and unopened bytes. */
export interface DetachedStream {
  index: number
  socket: net.Socket
  send: DirectionPosition
  receive: DirectionPosition
  /** Received bytes not yet opened: whole sealed records, then possibly a partial one. */
  pending: Buffer
}

const HOLD_LIMIT_BYTES = 16 * 1024 * 1024

/** The plaintext that opens every stream, also sealed into its HELLO record. */
export function streamPrefix(sessionId: Uint8Array, index: number): Buffer {
  const b = Buffer.alloc(STREAM_PREFIX_BYTES)
  STREAM_MAGIC.copy(b, 0)
  b.writeUInt16BE(PROTOCOL_MAJOR, 8)
  b.writeUInt16BE(index, 10)
  Buffer.from(sessionId).copy(b, 12)
  return b
}

export class SecureStream {
  readonly index: number
  private readonly socket: net.Socket
  private readonly sealer: RecordSealer
  private readonly opener: RecordOpener
  private readonly decoder: RecordDecoder
  private readonly queue: IncomingRecord[] = []
  private readonly highWater: number
  private waiter: { resolve: (r: IteratorResult<IncomingRecord>) => void; reject: (e: Error) => void } | undefined
  private failure: EscpError | undefined
  private ended = false
  private endReceived = false
  private endSent = false
  private recordsIn = 0
  private readonly detachAfterHello: boolean
  private held: Buffer[] = []
  private heldBytes = 0
  private detached = false

  /** Wraps a connected socket; `initial` holds bytes already read past the stream prefix. */
  constructor(socket: net.Socket, options: SecureStreamOptions, initial?: Buffer) {
    this.socket = socket
    this.index = options.index
    this.highWater = options.highWaterRecords ?? 8
    this.detachAfterHello = options.detachAfterHello === true
    const send: Direction = options.side === 'client' ? 'c2s' : 's2c'
    const recv: Direction = options.side === 'client' ? 's2c' : 'c2s'
    this.sealer = new RecordSealer(options.keys, options.index, send)
    this.opener = new RecordOpener(options.keys, options.index, recv)
    this.decoder = new RecordDecoder(options.blockSizeBytes)
    socket.setNoDelay(true)
    socket.on('data', (chunk: Buffer) => this.onData(chunk))
    socket.on('end', () => this.onEnd())
    socket.on('error', (err: NodeJS.ErrnoException) =>
      this.fail(escpError('ESCP_ERR_STREAM_CLOSED', `stream ${this.index}: ${err.code ?? err.message}`)),
    )
    socket.on('close', () => {
      if (!this.ended) this.fail(escpError('ESCP_ERR_STREAM_CLOSED', `stream ${this.index} was closed by the peer`))
    })
    if (initial && initial.byteLength > 0) this.onData(initial)
  }

  get remoteAddress(): string | undefined {
    return this.socket.remoteAddress
  }

  /** The error that ended this stream, if one did. */
  get error(): EscpError | undefined {
    return this.failure
  }

  /** Seals and writes a record; resolves once the socket can take more (backpressure). */
  async send(header: OutgoingHeader, payload: Uint8Array): Promise<void> {
    if (this.failure) throw this.failure
    if (this.endSent) throw escpError('ESCP_ERR_PROTOCOL', `stream ${this.index}: send after END`)
    const frames = this.sealer.seal(header, payload)
    let ok = true
    this.socket.cork()
    for (const [h, ct, tag] of frames) {
      this.socket.write(h)
      if (ct.byteLength > 0) this.socket.write(ct)
      ok = this.socket.write(tag)
    }
    this.socket.uncork()
    if (!ok) await this.drained()
  }

  /** Sends a record with no file fields and the given payload. */
  sendMessage(type: RecordType, payload: Uint8Array = new Uint8Array(0)): Promise<void> {
    return this.send({ type, flags: 0, rawLength: 0, fileId: 0n, offset: 0n }, payload)
  }

  /** Sends END and half-closes: this side will send nothing more. */
  async end(): Promise<void> {
    if (this.endSent || this.failure) return
    await this.sendMessage(RecordType.End)
    this.endSent = true
    if (this.endReceived) this.ended = true
    this.socket.end()
  }

  /** The next record, or done after the peer's END. Rejects with the stream's error. */
  next(): Promise<IteratorResult<IncomingRecord>> {
    const r = this.queue.shift()
    if (r) {
      if (this.queue.length < this.highWater && this.socket.isPaused()) this.socket.resume()
      return Promise.resolve({ value: r, done: false })
    }
    if (this.failure) return Promise.reject(this.failure)
    if (this.endReceived) return Promise.resolve({ value: undefined, done: true })
    if (this.socket.isPaused()) this.socket.resume()
    return new Promise((resolve, reject) => (this.waiter = { resolve, reject }))
  }

  [Symbol.asyncIterator](): AsyncIterator<IncomingRecord> {
    return { next: () => this.next() }
  }

  /** Tears the stream down; pending and later calls fail with `err` (or a closed-stream error). */
  destroy(err?: EscpError): void {
    this.fail(err ?? escpError('ESCP_ERR_STREAM_CLOSED', `stream ${this.index} was closed locally`))
  }

  /** Closes a stream whose both sides sent END. */
  close(): void {
    this.ended = true
    this.socket.destroy()
  }

  // Bytes wait here only until the stream is detached; past a few blocks' worth the socket is
  // paused so that a peer cannot fill memory before the worker takes over (detach() resumes nothing:
  // the new owner resumes the socket).
  private hold(bytes: Buffer): void {
    this.held.push(bytes)
    this.heldBytes += bytes.byteLength
    if (this.heldBytes > HOLD_LIMIT_BYTES) this.socket.pause()
  }

  /** Takes the socket away from this object (see detachAfterHello). */
  detach(): DetachedStream {
    if (!this.detachAfterHello || this.recordsIn === 0) throw escpError('ESCP_ERR_PROTOCOL', `stream ${this.index} cannot be detached before its hello`)
    if (this.failure) throw this.failure
    this.detached = true
    this.socket.pause()
    this.socket.removeAllListeners('data')
    this.socket.removeAllListeners('end')
    this.socket.removeAllListeners('error')
    this.socket.removeAllListeners('close')
    const pending = Buffer.concat([...this.held, this.decoder.takePending()])
    this.held = []
    return { index: this.index, socket: this.socket, send: this.sealer.position(), receive: this.opener.position(), pending }
  }

  private onData(chunk: Buffer): void {
    if (this.failure || this.detached) return
    if (this.detachAfterHello && this.recordsIn > 0 && this.decoder.pendingBytes === 0) {
      this.hold(chunk)
      return
    }
    let frames: RecordFrame[]
    try {
      frames = this.decoder.push(chunk)
    } catch (err) {
      this.fail(err as EscpError)
      return
    }
    for (const [i, f] of frames.entries()) {
      if (this.detachAfterHello && this.recordsIn > 0) {
        // After the HELLO, records stay sealed for whoever takes the stream over.
        for (const rest of frames.slice(i)) this.hold(rest.raw)
        return
      }
      if (this.endReceived) {
        this.fail(escpError('ESCP_ERR_PROTOCOL', `stream ${this.index}: a record after END`))
        return
      }
      let payload: Uint8Array | null
      try {
        payload = this.opener.open(f.header, f.headerBytes, f.ciphertext, f.tag)
      } catch (err) {
        const e = isEscpError(err, 'ESCP_ERR_AUTH')
          ? escpError('ESCP_ERR_AUTH', `record ${this.recordsIn} of stream ${this.index} (epoch ${this.opener.epoch})`)
          : (err as EscpError)
        this.fail(e)
        return
      }
      const first = this.recordsIn === 0
      this.recordsIn++
      if (payload === null) continue
      if (first !== (f.header.type === RecordType.Hello)) {
        this.fail(escpError('ESCP_ERR_PROTOCOL', `stream ${this.index}: ${first ? `opened with ${RecordType[f.header.type]} instead of HELLO` : 'a second HELLO'}`))
        return
      }
      if (f.header.type === RecordType.End) {
        this.endReceived = true
        continue
      }
      this.deliver({ type: f.header.type, flags: f.header.flags, rawLength: f.header.rawLength, fileId: f.header.fileId, offset: f.header.offset, payload })
    }
    if (this.endReceived) this.settleDone()
  }

  private deliver(r: IncomingRecord): void {
    const w = this.waiter
    if (w) {
      this.waiter = undefined
      w.resolve({ value: r, done: false })
      return
    }
    this.queue.push(r)
    if (this.queue.length >= this.highWater) this.socket.pause()
  }

  private settleDone(): void {
    if (this.queue.length === 0 && this.waiter) {
      const w = this.waiter
      this.waiter = undefined
      w.resolve({ value: undefined, done: true })
    }
    if (this.endSent) this.ended = true
  }

  private onEnd(): void {
    // In hold mode the bytes (and the END among them) belong to whoever detaches the stream.
    if (this.failure || (this.detachAfterHello && this.recordsIn > 0)) return
    if (this.decoder.pendingBytes > 0) {
      this.fail(escpError('ESCP_ERR_STREAM_CLOSED', `stream ${this.index} ended in the middle of a record`))
    } else if (!this.endReceived) {
      this.fail(escpError('ESCP_ERR_STREAM_CLOSED', `stream ${this.index} ended without END`))
    } else if (this.endSent) {
      this.ended = true
      this.socket.destroy()
    }
  }

  private fail(err: EscpError): void {
    if (this.failure || this.ended) return
    this.failure = err
    this.queue.length = 0
    this.socket.destroy()
    const w = this.waiter
    this.waiter = undefined
    w?.reject(err)
  }

  private drained(): Promise<void> {
    return new Promise((resolve, reject) => {
      const onDrain = () => {
        this.socket.off('close', onClose)
        resolve()
      }
      const onClose = () => {
        this.socket.off('drain', onDrain)
        reject(this.failure ?? escpError('ESCP_ERR_STREAM_CLOSED', `stream ${this.index} closed while sending`))
      }
      this.socket.once('drain', onDrain)
      this.socket.once('close', onClose)
    })
  }
}

/** Reads exactly `n` bytes from a fresh socket (the stream prefix), with a deadline. */
export function readExactly(socket: net.Socket, n: number, timeoutMs: number = HELLO_TIMEOUT_MS): Promise<{ head: Buffer; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let got = 0
    const done = (err?: Error, value?: { head: Buffer; rest: Buffer }) => {
      clearTimeout(timer)
      socket.off('data', onData)
      socket.off('end', onEnd)
      socket.off('error', onEnd)
      socket.off('close', onEnd)
      if (err) reject(err)
      else resolve(value as { head: Buffer; rest: Buffer })
    }
    const onData = (c: Buffer) => {
      chunks.push(c)
      got += c.byteLength
      if (got >= n) {
        socket.pause()
        const all = Buffer.concat(chunks)
        done(undefined, { head: all.subarray(0, n), rest: all.subarray(n) })
      }
    }
    const onEnd = () => done(escpError('ESCP_ERR_STREAM_CLOSED', `the connection closed after ${got} of ${n} opening bytes`))
    const timer = setTimeout(() => done(escpError('ESCP_ERR_TIMEOUT', 'the stream hello', timeoutMs)), timeoutMs)
    socket.on('data', onData)
    socket.once('end', onEnd)
    socket.once('error', onEnd)
    socket.once('close', onEnd)
    socket.resume()
  })
}

/** Waits for the first record of a stream, which must be a HELLO carrying `prefix`. */
export async function expectHello(stream: SecureStream, prefix: Buffer, timeoutMs: number = HELLO_TIMEOUT_MS): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(escpError('ESCP_ERR_TIMEOUT', `the HELLO on stream ${stream.index}`, timeoutMs)), timeoutMs)
  })
  try {
    const first = await Promise.race([stream.next(), timeout])
    if (first.done || first.value.type !== RecordType.Hello || !Buffer.from(first.value.payload).equals(prefix)) {
      throw escpError('ESCP_ERR_PROTOCOL', `stream ${stream.index} did not open with a valid HELLO`)
    }
  } finally {
    clearTimeout(timer)
  }
}
