// Reads a data stream's records off its socket straight into the buffers they are handed on
// in. A Node socket reads into a new 64 KiB buffer per read by default, and a 1 MiB record is
// then gathered from a score of them: measured over loopback with four streams, that cost the
// receiving thread four to five times the CPU of reading into buffers of its own choosing
// (1.8–2.4 against 0.4–0.5 CPU s for 4.3 GB), most of it in the kernel.
import type net from 'node:net'
import type { EscpError } from '../errors'
import { RECORD_HEADER_BYTES, TAG_BYTES } from './constants'
import { RecordDecoder, checkDataRecord } from './record-decoder'
import { decodeHeader } from './record-header'
import type { RecordHeader } from './record-header'

/**
 * A record as it came, still sealed: its checked header, and all its bytes at the start of a
 * buffer of its own (`raw` starts its ArrayBuffer; a large record's may be longer, a full-size
 * record's buffer), to be transferred to a worker as it is.
 */
export interface SealedRecord {
  header: RecordHeader
  raw: Buffer
}

export interface RecordReaderOptions {
  blockSizeBytes: number
  /** A buffer of exactly `bytes` to hold a record (its contents may be anything). */
  allocate: (bytes: number) => Buffer
  /** Records, in the order they came; may call pause(). */
  onRecords: (records: SealedRecord[]) => void
  /** A record that breaks the protocol; nothing more is read. */
  onError: (err: EscpError) => void
  /** Reading from buffers of its own (net.Socket's `onread`); false: the socket's 'data' events. */
  userBuffers?: boolean
}

/** The records of a socket that is already connected, starting with bytes read before. */
export interface RecordReader {
  /** Bytes held that do not yet make a whole record (non-zero at the peer's end: a cut record). */
  readonly pendingBytes: number
  pause(): void
  resume(): void
}

/**
 * Starts reading `socket` (paused, with no 'data' listener) after `pending`, the bytes read off
 * it before. Reads into buffers of its own where the running Node allows it, else from 'data'.
 */
export function readRecords(socket: net.Socket, pending: Buffer, options: RecordReaderOptions): RecordReader {
  const hooks = options.userBuffers === false ? null : userBufferHooks(socket)
  return hooks ? new UserBufferReader(socket, hooks, pending, options) : new ChunkReader(socket, pending, options)
}

interface UserBufferHooks {
  install(first: Uint8Array, onRead: (bytes: number) => void, next: () => Uint8Array): void
}

// net.Socket takes `onread` only when it is made; a socket that a server accepted, or that has
// already carried the stream's hello, is switched by the same fields its constructor sets,
// found by their symbols' names. Where they are not there, records come from 'data' events.
function userBufferHooks(socket: net.Socket): UserBufferHooks | null {
  const symbols = Object.getOwnPropertySymbols(socket)
  const find = (name: string) => symbols.find((s) => s.description === name)
  const kBuffer = find('kBuffer')
  const kBufferCb = find('kBufferCb')
  const kBufferGen = find('kBufferGen')
  const handle = (socket as unknown as { _handle?: { useUserBuffer?: (b: Uint8Array) => void } })._handle
  if (!kBuffer || !kBufferCb || !kBufferGen || typeof handle?.useUserBuffer !== 'function') return null
  return {
    install(first, onRead, next) {
      const fields = socket as unknown as Record<symbol, unknown>
      fields[kBuffer] = first
      fields[kBufferCb] = (bytes: number) => {
        onRead(bytes)
      }
      fields[kBufferGen] = next
      handle.useUserBuffer?.(first)
    },
  }
}

/** Bytes a socket's readable side holds already: read before the switch, or they would be lost. */
function drainReadable(socket: net.Socket): Buffer[] {
  const out: Buffer[] = []
  while (socket.readableLength > 0) {
    const chunk = socket.read() as Buffer | null
    if (chunk === null) break
    out.push(chunk)
  }
  return out
}

/** What both ways of reading share: pausing the socket, and stopping it at a broken record. */
abstract class SocketReader implements RecordReader {
  protected failed = false

  constructor(
    protected readonly socket: net.Socket,
    protected readonly options: RecordReaderOptions,
  ) {}

  abstract get pendingBytes(): number

  pause(): void {
    this.socket.pause()
  }

  resume(): void {
    if (!this.failed) this.socket.resume()
  }

  /** A record broke the protocol: nothing more is read. */
  protected stop(err: unknown): void {
    this.failed = true
    this.socket.pause()
    this.options.onError(err as EscpError)
  }
}

/** The most one read brings when it is not finishing a large record. */
const READ_CAP_BYTES = 256 * 1024
/**
 * A record of at least this share of a full-size one goes on in the buffer it was read into.
 * Its buffer is a full-size one, so a stream's window of such records holds at most 4/3 of the
 * memory its full blocks would.
 */
const LARGE_RECORD_SHARE = 3 / 4

/**
 * Each record is read into a buffer of the record size of the session. Once a large record's
 * header is in (at least LARGE_RECORD_SHARE of a full one: a block, or a bundle of small files),
 * reads stop at its end, so it lies alone at the front of its buffer and goes on in it, not
 * copied; small records that arrive together are copied out, each into a buffer of its own
 * size, and a record's first bytes read with another's are moved to the front.
 */
class UserBufferReader extends SocketReader {
  private readonly fullBytes: number
  private buf: Buffer
  private filled = 0
  /** The end of the next read (see cut()). */
  private limit: number

  constructor(socket: net.Socket, hooks: UserBufferHooks, pending: Buffer, options: RecordReaderOptions) {
    super(socket, options)
    this.fullBytes = RECORD_HEADER_BYTES + options.blockSizeBytes + TAG_BYTES
    this.buf = options.allocate(this.fullBytes)
    this.limit = Math.min(this.fullBytes, READ_CAP_BYTES)
    // The socket reads into the view it is given after each read; bytes cut before it reads
    // move the view, so the first is given once they are.
    for (const bytes of [pending, ...drainReadable(socket)]) this.absorb(bytes)
    if (this.failed) return
    hooks.install(
      this.view(),
      (bytes) => this.landed(bytes),
      () => this.view(),
    )
  }

  get pendingBytes(): number {
    return this.filled
  }

  private view(): Uint8Array {
    return this.buf.subarray(this.filled, this.limit)
  }

  private landed(bytes: number): void {
    if (this.failed) return
    this.filled += bytes
    this.cut()
  }

  // Bytes read before the switch go through the same buffer, as if read into it.
  private absorb(bytes: Buffer): void {
    for (let at = 0; at < bytes.byteLength && !this.failed; ) {
      const n = bytes.copy(this.buf, this.filled, at, at + this.limit - this.filled)
      at += n
      this.landed(n)
    }
  }

  private cut(): void {
    const out: SealedRecord[] = []
    let start = 0
    /** The length of the large record whose first bytes are in, to be read to its end. */
    let large = 0
    try {
      while (this.filled - start >= RECORD_HEADER_BYTES) {
        const header = decodeHeader(this.buf.subarray(start, start + RECORD_HEADER_BYTES), this.options.blockSizeBytes)
        const need = RECORD_HEADER_BYTES + header.length + TAG_BYTES
        checkDataRecord(header, this.options.blockSizeBytes)
        const isLarge = need >= this.fullBytes * LARGE_RECORD_SHARE
        if (this.filled - start < need) {
          if (isLarge) large = need
          break
        }
        if (start === 0 && isLarge && this.filled === need) {
          // A large record is read to its end and no further: it goes on in its buffer as is.
          out.push({ header, raw: this.buf.subarray(0, need) })
          this.buf = this.options.allocate(this.fullBytes)
          this.filled = 0
          break
        }
        const raw = this.options.allocate(need)
        this.buf.copy(raw, 0, start, start + need)
        out.push({ header, raw })
        start += need
      }
    } catch (err) {
      this.stop(err)
      return
    }
    if (start > 0) {
      this.buf.copy(this.buf, 0, start, this.filled)
      this.filled -= start
    }
    // A large record is read to its end and no further, so that it lies alone in its buffer.
    // Otherwise a read may bring several records, though never more than READ_CAP_BYTES' worth:
    // a peer's tiny records (48 bytes each) cost far more to hand on than to read.
    this.limit = large > 0 ? large : Math.min(this.fullBytes, this.filled + READ_CAP_BYTES)
    if (out.length > 0) this.options.onRecords(out)
  }
}

/** Records from the socket's 'data' events, gathered by a RecordDecoder. */
class ChunkReader extends SocketReader {
  private readonly decoder: RecordDecoder

  constructor(socket: net.Socket, pending: Buffer, options: RecordReaderOptions) {
    super(socket, options)
    this.decoder = new RecordDecoder(options.blockSizeBytes, options.allocate, true)
    socket.on('data', (chunk: Buffer) => this.push(chunk))
    if (pending.byteLength > 0) this.push(pending)
  }

  get pendingBytes(): number {
    return this.decoder.pendingBytes
  }

  private push(chunk: Buffer): void {
    if (this.failed) return
    let frames
    try {
      frames = this.decoder.push(chunk)
    } catch (err) {
      this.stop(err)
      return
    }
    if (frames.length > 0) this.options.onRecords(frames.map((f) => ({ header: f.header, raw: this.whole(f.raw) })))
  }

  // A record that came within one chunk is a view into it: it is copied out, to go on whole.
  private whole(raw: Buffer): Buffer {
    if (raw.byteOffset === 0 && raw.byteLength === raw.buffer.byteLength) return raw
    const own = this.options.allocate(raw.byteLength)
    raw.copy(own)
    return own
  }
}
