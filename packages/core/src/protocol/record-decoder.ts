// Cuts a TCP byte stream into records. Partial reads are buffered; a header is checked (type,
// flags, lengths against the session's limits) before any payload buffer exists, so a forged
// length of 2^31 costs the receiver nothing. At most one record is held at a time.
import { escpError } from '../errors'
import { RECORD_HEADER_BYTES, TAG_BYTES } from './constants'
import { decodeHeader } from './record-header'
import type { RecordHeader } from './record-header'

export interface RecordFrame {
  header: RecordHeader
  headerBytes: Buffer
  ciphertext: Buffer
  tag: Buffer
}

export class RecordDecoder {
  private chunks: Buffer[] = []
  private buffered = 0
  private header: RecordHeader | undefined
  private headerBytes: Buffer | undefined
  private failed = false

  constructor(private readonly blockSizeBytes: number) {}

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
          const hb = this.take(RECORD_HEADER_BYTES)
          this.header = decodeHeader(hb, this.blockSizeBytes)
          this.headerBytes = hb
        }
        const need = this.header.length + TAG_BYTES
        if (this.buffered < need) break
        const body = this.take(need)
        out.push({
          header: this.header,
          headerBytes: this.headerBytes as Buffer,
          ciphertext: body.subarray(0, this.header.length),
          tag: body.subarray(this.header.length),
        })
        this.header = undefined
        this.headerBytes = undefined
      }
    } catch (err) {
      this.failed = true
      this.chunks = []
      this.buffered = 0
      throw err
    }
    return out
  }

  /** Hands over every byte held, a partly read header included, and empties the decoder. */
  takePending(): Buffer {
    const parts = this.headerBytes ? [this.headerBytes, ...this.chunks] : this.chunks
    const out = Buffer.concat(parts)
    this.chunks = []
    this.buffered = 0
    this.header = undefined
    this.headerBytes = undefined
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
      out = Buffer.allocUnsafe(n)
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
