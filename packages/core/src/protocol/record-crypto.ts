// Sealing and opening records for one direction of one stream. The nonce is the count of
// records sealed under the current key, never sent: a replayed, dropped, reordered or
// cross-stream record is opened with the wrong nonce or key and fails authentication.
import { escpError } from '../errors'
import type { Cipher, CipherKey } from '../contracts/cipher'
import { MAX_RECORDS_PER_KEY, REKEY_AFTER_BYTES, REKEY_AFTER_RECORDS, RECORD_HEADER_BYTES, RecordType, TAG_BYTES } from './constants'
import { deriveKey, nonceFor } from './keys'
import type { Direction, SessionKeys } from './keys'
import { encodeHeader } from './record-header'
import type { RecordHeader } from './record-header'

/** What a record adds to its payload on the wire: the header before it and the tag after. */
export const RECORD_FRAME_OVERHEAD = RECORD_HEADER_BYTES + TAG_BYTES

/** A sealed record as buffers to write in order (header, ciphertext, tag), without copying. */
export type SealedFrame = [header: Buffer, ciphertext: Uint8Array, tag: Uint8Array]

interface KeyState {
  epoch: number
  key: CipherKey
  records: bigint
  bytes: number
}

/** Where a direction's key schedule stands; lets another thread take over a stream. */
export interface DirectionPosition {
  epoch: number
  records: bigint
  bytes: number
}

class DirectionState {
  protected state: KeyState
  protected readonly cipher: Cipher
  protected readonly nonce = Buffer.alloc(12)

  constructor(
    protected readonly keys: SessionKeys,
    protected readonly streamIndex: number,
    protected readonly direction: Direction,
    at: DirectionPosition = { epoch: 0, records: 0n, bytes: 0 },
  ) {
    this.cipher = keys.cipher
    this.state = { ...at, key: deriveKey(keys, streamIndex, direction, at.epoch) }
  }

  /** The position to resume from, e.g. in a worker thread that takes the stream over. */
  position(): DirectionPosition {
    return { epoch: this.state.epoch, records: this.state.records, bytes: this.state.bytes }
  }

  protected nextEpoch(): void {
    const epoch = this.state.epoch + 1
    this.state = { epoch, key: deriveKey(this.keys, this.streamIndex, this.direction, epoch), records: 0n, bytes: 0 }
  }

  get epoch(): number {
    return this.state.epoch
  }
}

export class RecordSealer extends DirectionState {
  /**
   * Seals one record. When the key is due for replacement, a REKEY record is sealed first
   * with the old key; both frames are returned and must be written in order.
   */
  seal(header: Omit<RecordHeader, 'length'>, payload: Uint8Array): SealedFrame[] {
    const frames: SealedFrame[] = []
    const h = encodeHeader({ ...header, length: payload.byteLength })
    if (this.rekeyDue()) frames.push(this.sealRekey())
    frames.push(this.sealOne(h, payload))
    return frames
  }

  /** Whether the cipher can seal into a given buffer, so that sealInto() may be used. */
  get sealsInto(): boolean {
    return this.cipher.sealInto !== undefined
  }

  /**
   * Seals one record into `frame`, which must hold RECORD_FRAME_OVERHEAD more bytes than the
   * payload: its header, ciphertext and tag are written there, one after the other, with no
   * buffer allocated. `payload` may be the frame's own payload bytes (frame[32, 32 + n)) or
   * apart from the frame. Returns the bytes to write, in order: a REKEY record first when one
   * is due, then the record, a view of `frame`.
   */
  sealInto(header: Omit<RecordHeader, 'length'>, payload: Uint8Array, frame: Uint8Array): Uint8Array[] {
    const sealInto = this.cipher.sealInto
    if (!sealInto) throw escpError('ESCP_ERR_BAD_ARGUMENT', `${this.cipher.name} cannot seal into a buffer`)
    const n = payload.byteLength
    if (frame.byteLength < n + RECORD_FRAME_OVERHEAD) {
      throw escpError('ESCP_ERR_BAD_ARGUMENT', `a frame of ${frame.byteLength} bytes for a payload of ${n}`)
    }
    // Everything that can refuse the record is done before a key change is sealed: a REKEY
    // record sealed and then not sent would leave the peer a key behind.
    const h = encodeHeader({ ...header, length: n })
    const out: Uint8Array[] = []
    if (this.rekeyDue()) out.push(Buffer.concat(this.sealRekey()))
    frame.set(h, 0)
    const aad = frame.subarray(0, RECORD_HEADER_BYTES)
    const body = frame.subarray(RECORD_HEADER_BYTES, RECORD_HEADER_BYTES + n)
    const tag = frame.subarray(RECORD_HEADER_BYTES + n, RECORD_HEADER_BYTES + n + TAG_BYTES)
    sealInto.call(this.cipher, this.state.key, nonceFor(this.state.records, this.nonce), aad, payload, body, tag)
    this.count(n)
    out.push(frame.subarray(0, n + RECORD_FRAME_OVERHEAD))
    return out
  }

  private rekeyDue(): boolean {
    return this.state.bytes >= REKEY_AFTER_BYTES || this.state.records >= BigInt(REKEY_AFTER_RECORDS)
  }

  private count(payloadBytes: number): void {
    this.state.records++
    this.state.bytes += payloadBytes + RECORD_HEADER_BYTES
  }

  /** Seals the REKEY record that ends the current key, and moves on to the next key. */
  private sealRekey(): SealedFrame {
    const frame = this.sealOne(encodeHeader({ type: RecordType.Rekey, flags: 0, length: 0, rawLength: 0, fileId: 0n, offset: 0n }), new Uint8Array(0))
    this.nextEpoch()
    return frame
  }

  private sealOne(h: Buffer, payload: Uint8Array): SealedFrame {
    const { ciphertext, tag } = this.cipher.seal(this.state.key, nonceFor(this.state.records, this.nonce), h, payload)
    this.count(payload.byteLength)
    return [h, ciphertext, tag]
  }

  /** For tests: force the next seal to rotate the key. */
  forceRekey(): void {
    this.state.bytes = REKEY_AFTER_BYTES
  }
}

export class RecordOpener extends DirectionState {
  /**
   * Verifies and decrypts one record (its raw 32 header bytes are the AAD). Returns null for a
   * REKEY record, which is consumed here: the next record is opened with the next key.
   */
  open(header: RecordHeader, headerBytes: Uint8Array, ciphertext: Uint8Array, tag: Uint8Array): Uint8Array | null {
    return this.openWith(header, () => this.cipher.open(this.state.key, nonceFor(this.state.records, this.nonce), headerBytes, ciphertext, tag))
  }

  /**
   * open(), decrypting the ciphertext where it lies when the cipher can (openInto); the plain
   * bytes returned are then `ciphertext` itself, and the record's buffer is theirs.
   */
  openInPlace(header: RecordHeader, headerBytes: Uint8Array, ciphertext: Uint8Array, tag: Uint8Array): Uint8Array | null {
    return this.openTo(header, headerBytes, ciphertext, tag, ciphertext)
  }

  /** Whether the cipher decrypts into a buffer it is given (openTo then copies nothing). */
  get opensInto(): boolean {
    return this.cipher.openInto !== undefined
  }

  /**
   * open(), decrypting into `out` (as long as the ciphertext, or where it lies) when the cipher
   * can (openInto): the plain bytes returned are then `out`.
   */
  openTo(header: RecordHeader, headerBytes: Uint8Array, ciphertext: Uint8Array, tag: Uint8Array, out: Uint8Array): Uint8Array | null {
    const openInto = this.cipher.openInto
    if (!openInto) return this.open(header, headerBytes, ciphertext, tag)
    return this.openWith(header, () => {
      openInto.call(this.cipher, this.state.key, nonceFor(this.state.records, this.nonce), headerBytes, ciphertext, tag, out)
      return out
    })
  }

  private openWith(header: RecordHeader, decrypt: () => Uint8Array): Uint8Array | null {
    if (this.state.records >= BigInt(MAX_RECORDS_PER_KEY)) {
      throw escpError('ESCP_ERR_PROTOCOL', `the peer sent ${MAX_RECORDS_PER_KEY} records without changing keys`)
    }
    const plain = decrypt()
    this.state.records++
    if (header.type === RecordType.Rekey) {
      this.nextEpoch()
      return null
    }
    return plain
  }
}
