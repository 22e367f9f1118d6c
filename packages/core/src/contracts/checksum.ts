// End-to-end integrity. The sender digests each block it read, the receiver each block it
// wrote; block digests are folded in block order into a file digest, so streams may finish
// blocks in any order while the file digest stays one value.
import type { InjectionToken } from 'tsyringe'
import type { Availability } from './availability'

/** Folds block digests, pushed in block order, into one file digest. */
export interface DigestCombiner {
  push(blockDigest: Uint8Array): void
  digest(): Uint8Array
}

export interface Checksum {
  readonly name: string
  readonly digestLengthBytes: number
  available(): Availability
  /** Digest of one block (any length, including zero). */
  block(data: Uint8Array): Uint8Array
  /** A fresh combiner; the file digest depends on every block digest and on their order. */
  combiner(): DigestCombiner
}

export const CHECKSUM: InjectionToken<Checksum> = Symbol.for('escp:checksum')

/** File digest of a file of one block: what a 1.4 bundle carries for each of its files. */
export function wholeFileDigest(checksum: Checksum, data: Uint8Array): Uint8Array {
  return combineDigests(checksum, [checksum.block(data)])
}

/** File digest of an ordered list of block digests. */
export function combineDigests(checksum: Checksum, blockDigests: Iterable<Uint8Array>): Uint8Array {
  const c = checksum.combiner()
  for (const d of blockDigests) c.push(d)
  return c.digest()
}
