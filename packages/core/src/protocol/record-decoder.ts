// Cuts a TCP byte stream into records. Partial reads are buffered; a header is checked (type,
// flags, lengths against the session's limits) before any payload buffer exists, so a forged
// length of 2^31 costs the receiver nothing. At most one record is held at a time, and each
// record comes out as one contiguous buffer (one copy at most), ready to hand to a worker.
import { escpError } from '../errors'
import { RECORD_HEADER_BYTES, RecordType, TAG_BYTES } from './constants'
import { decodeHeader } from './record-header'
import type { RecordHeader } from './record-header'

export interface RecordFrame {
  header: RecordHeader
  /** The whole sealed record: header, ciphertext, tag. */
  raw: Buffer
  headerBytes: Buffer
  ciphertext: Buffer
  tag: Buffer
}

/** Splits a whole sealed record (as RecordFrame.raw) into its parts, checking the header. */
export function frameOf(raw: Buffer, blockSizeBytes: number): RecordFrame {
  const header = decodeHeader(raw, blockSizeBytes)
  if (raw.byteLength !== RECORD_HEADER_BYTES + header.length + TAG_BYTES) {
    throw escpError('ESCP_ERR_PROTOCOL', `a record of ${raw.byteLength} bytes whose header says ${header.length}`)
  }
  return {
    header,
    raw,
    headerBytes: raw.subarray(0, RECORD_HEADER_BYTES),
    ciphertext: raw.subarray(RECORD_HEADER_BYTES, RECORD_HEADER_BYTES + header.length),
    tag: raw.subarray(RECORD_HEADER_BYTES + header.length),
  }
}

/**
 * A data stream carries blocks and the records around them (END, REKEY, KEEPALIVE), never more
 * than a block's bytes: a header that says more stops it, before its bytes are waited for.
 */
export function checkDataRecord(header: RecordHeader, blockSizeBytes: number): void {
  if (header.length > blockSizeBytes) throw escpError('ESCP_ERR_PROTOCOL', `a ${RecordType[header.type]} record of ${header.length} bytes on a data stream, whose records carry at most a block`)
}

export class RecordDecoder {
  private chunks: Buffer[] = []
  private buffered = 0
  private header: RecordHeader | undefined
  private failed = false

  /**
   * `allocate` gives the buffer a record is gathered into when its bytes came in several chunks
   * (a buffer of exactly `bytes`, whose contents may be anything); by default a new one.
   * `dataStream`: only the records of a data stream are let through (checkDataRecord).
   */
  constructor(
    private readonly blockSizeBytes: number,
    private readonly allocate: (bytes: number) => Buffer = (bytes) => Buffer.allocUnsafeSlow(bytes),
    private readonly dataStream = false,
  ) {}

  /** Bytes held that do not yet make a whole record. */
  get pendingBytes(): number {
    return this.buffered
  }

  /** Feeds bytes; returns the records they complete, in order. Throws ESCP_ERR_PROTOCOL. */
  push(chunk: Buffer): RecordFrame[] {
    if (this.failed) throw escpError('ESCP_ERR_PROTOCOL', 'data after a protocol error')
    if (chunk.byteLength > 0) {
      this.chunks.push(chunk)
      this.buffered += chunk.byteLength
    }
    const out: RecordFrame[] = []
    try {
      for (;;) {
        if (!this.header) {
          if (this.buffered < RECORD_HEADER_BYTES) break
          this.header = decodeHeader(this.peek(RECORD_HEADER_BYTES), this.blockSizeBytes)
          if (this.dataStream) checkDataRecord(this.header, this.blockSizeBytes)
        }
        const need = RECORD_HEADER_BYTES + this.header.length + TAG_BYTES
        if (this.buffered < need) break
        const raw = this.take(need)
        const h = this.header
        this.header = undefined
        out.push({
          header: h,
          raw,
          headerBytes: raw.subarray(0, RECORD_HEADER_BYTES),
          ciphertext: raw.subarray(RECORD_HEADER_BYTES, RECORD_HEADER_BYTES + h.length),
          tag: raw.subarray(RECORD_HEADER_BYTES + h.length),
        })
      }
    } catch (err) {
      this.failed = true
      this.chunks = []
      this.buffered = 0
      throw err
    }
    return out
  }

  /** Hands over every byte held, a partly received record included, and empties the decoder. */
  takePending(): Buffer {
    const out = Buffer.concat(this.chunks)
    this.chunks = []
    this.buffered = 0
    this.header = undefined
    return out
  }

  // The first n buffered bytes, without consuming them.
  private peek(n: number): Buffer {
    const first = this.chunks[0]
    if (first.byteLength >= n) return first.subarray(0, n)
    const out = Buffer.allocUnsafe(n)
    let filled = 0
    for (const c of this.chunks) {
      const part = Math.min(c.byteLength, n - filled)
      c.copy(out, filled, 0, part)
      filled += part
      if (filled === n) break
    }
    return out
  }

  // Removes n buffered bytes; a view when one chunk holds them, else one copy.
  private take(n: number): Buffer {
    const first = this.chunks[0]
    let out: Buffer
    if (first.byteLength >= n) {
      out = first.subarray(0, n)
      if (first.byteLength === n) this.chunks.shift()
      else this.chunks[0] = first.subarray(n)
    } else {
      out = this.allocate(n)
      let filled = 0
      while (filled < n) {
        const c = this.chunks[0]
        const part = Math.min(c.byteLength, n - filled)
        c.copy(out, filled, 0, part)
        filled += part
        if (part === c.byteLength) this.chunks.shift()
        else this.chunks[0] = c.subarray(part)
      }
    }
    this.buffered -= n
    return out
  }
}
