// Folds block digests into a file digest in block order while blocks complete in any order.
// A block never added (one the sender skipped because it lies in a hole) counts as a block of
// zeros of its length. Only out-of-order digests are kept: for a file sent whole, streams ×
// queue depth bound them; for a file with holes, the digests of the blocks after its first hole
// wait for the file's end, since nothing says in advance which blocks will not come. A file whose
// size is known only at its end is told its size then.
import type { Checksum, DigestCombiner } from '../contracts/checksum'

/**
 * Digests of all-zero blocks: what a block in a hole contributes to a file digest. The
 * full-length one is computed once per side; a shorter last block once per file that needs it.
 */
export class ZeroBlockDigests {
  private zeros = new Uint8Array(0)
  private full: Uint8Array | undefined

  constructor(
    readonly checksum: Checksum,
    readonly blockSizeBytes: number,
  ) {}

  of(lengthBytes: number): Uint8Array {
    if (lengthBytes === this.blockSizeBytes && this.full) return this.full
    if (this.zeros.byteLength < lengthBytes) this.zeros = new Uint8Array(this.blockSizeBytes)
    const digest = this.checksum.block(this.zeros.subarray(0, lengthBytes))
    if (lengthBytes === this.blockSizeBytes) this.full = digest
    return digest
  }
}

export class OrderedDigest {
  private readonly combiner: DigestCombiner
  private readonly early = new Map<number, Uint8Array>()
  private blockCount: number
  private next = 0

  /** `sizeBytes` null: a file whose size is known only at its end, given then to end(). */
  constructor(
    private readonly zeros: ZeroBlockDigests,
    private sizeBytes: number | null,
  ) {
    this.combiner = zeros.checksum.combiner()
    this.blockCount = sizeBytes === null ? Infinity : Math.ceil(sizeBytes / zeros.blockSizeBytes)
  }

  /**
   * Adds the digest of block `index` (0-based, in offset order). Returns false, adding nothing,
   * for an index that is not one of the file's blocks or that was added before.
   */
  add(index: number, digest: Uint8Array): boolean {
    if (!Number.isInteger(index) || index < this.next || index >= this.blockCount || this.early.has(index)) return false
    if (index !== this.next) {
      this.early.set(index, digest)
      return true
    }
    this.combiner.push(digest)
    this.next++
    for (let d = this.early.get(this.next); d !== undefined; d = this.early.get(this.next)) {
      this.early.delete(this.next)
      this.combiner.push(d)
      this.next++
    }
    return true
  }

  /**
   * Gives a file of unknown size its size, now known. Returns false when a block already added
   * lies beyond it.
   */
  end(sizeBytes: number): boolean {
    this.sizeBytes = sizeBytes
    this.blockCount = Math.ceil(sizeBytes / this.zeros.blockSizeBytes)
    if (this.next > this.blockCount) return false
    for (const index of this.early.keys()) if (index >= this.blockCount) return false
    return true
  }

  /** The file digest; call it once every block that was sent has been added (and the size is known). */
  digest(): Uint8Array {
    const bs = this.zeros.blockSizeBytes
    const size = this.sizeBytes
    if (size === null) throw new Error('OrderedDigest: end() gives a file of unknown size its size before digest()')
    for (; this.next < this.blockCount; this.next++) {
      const d = this.early.get(this.next)
      if (d) this.early.delete(this.next)
      this.combiner.push(d ?? this.zeros.of(Math.min(bs, size - this.next * bs)))
    }
    return this.combiner.digest()
  }
}
