// Folds block digests into a file digest in block order while blocks complete in any order.
// Only out-of-order digests are kept, and streams × queue depth bounds how many there are.
import type { Checksum, DigestCombiner } from '../contracts/checksum'

export class OrderedDigest {
  private readonly combiner: DigestCombiner
  private readonly early = new Map<number, Uint8Array>()
  private next = 0

  constructor(checksum: Checksum) {
    this.combiner = checksum.combiner()
  }

  /** Adds the digest of block `index` (0-based, in offset order). */
  add(index: number, digest: Uint8Array): void {
    if (index !== this.next) {
      this.early.set(index, digest)
      return
    }
    this.combiner.push(digest)
    this.next++
    for (let d = this.early.get(this.next); d !== undefined; d = this.early.get(this.next)) {
      this.early.delete(this.next)
      this.combiner.push(d)
      this.next++
    }
  }

  /** Blocks folded so far (a gap stops the count). */
  get count(): number {
    return this.next
  }

  digest(): Uint8Array {
    return this.combiner.digest()
  }
}
