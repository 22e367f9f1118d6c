// Block compression. Each block is compressed on its own so blocks stay independent and can
// travel on any stream; a block that would not shrink is sent raw.
import type { InjectionToken } from 'tsyringe'
import type { Availability } from './availability'

export interface Compressor {
  readonly name: string
  /** Level used when compress() is given none. */
  readonly defaultLevel: number
  available(): Availability
  /**
   * Compresses `src` into `dst` and returns the compressed length, or null when the result
   * would not be smaller than `src` (the caller then sends the block raw). `dst` may be
   * shorter than worst-case output: running out of room also means "not smaller".
   */
  compress(src: Uint8Array, dst: Uint8Array, level?: number): number | null
  /**
   * Decompresses `src` into `dst` and returns the decompressed length. Corrupt input, or
   * output that does not fit in `dst`, throws ESCP_ERR_CORRUPT_BLOCK.
   */
  decompress(src: Uint8Array, dst: Uint8Array): number
}

export const COMPRESSOR: InjectionToken<Compressor> = Symbol.for('escp:compressor')
