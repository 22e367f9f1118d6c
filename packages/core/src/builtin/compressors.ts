// Block compressors: `none`, and zstd through zstd-napi's low-level contexts, which compress
// into the caller's buffer (the high-level API allocates a worst-case buffer per call).
import { CCtx, CParameter, DCtx } from 'zstd-napi/binding'
import { escpError } from '../errors'
import { AVAILABLE } from '../contracts/availability'
import type { Availability } from '../contracts/availability'
import type { Compressor } from '../contracts/compressor'

export class NoCompressor implements Compressor {
  readonly name = 'none'
  readonly defaultLevel = 0

  available(): Availability {
    return AVAILABLE
  }

  compress(): number | null {
    return null
  }

  decompress(src: Uint8Array, dst: Uint8Array): number {
    if (src.byteLength > dst.byteLength) {
      throw escpError('ESCP_ERR_CORRUPT_BLOCK', `${src.byteLength} bytes do not fit in a ${dst.byteLength}-byte block`)
    }
    dst.set(src)
    return src.byteLength
  }
}

/** zstd, one frame per block. Contexts are reused, so one instance serves one thread. */
export class ZstdCompressor implements Compressor {
  readonly name = 'zstd'
  // Level 3 is zstd's default: ~260 MB/s per core here, a fair trade on slow links only.
  readonly defaultLevel = 3
  private readonly cctx = new CCtx()
  private readonly dctx = new DCtx()
  private level = -Infinity

  available(): Availability {
    return AVAILABLE
  }

  compress(src: Uint8Array, dst: Uint8Array, level: number = this.defaultLevel): number | null {
    if (level !== this.level) {
      this.cctx.setParameter(CParameter.compressionLevel, level)
      this.level = level
    }
    let written: number
    try {
      written = this.cctx.compress2(dst, src)
    } catch {
      // "Destination buffer is too small": the block did not shrink enough to fit.
      return null
    }
    return written < src.byteLength ? written : null
  }

  decompress(src: Uint8Array, dst: Uint8Array): number {
    try {
      return this.dctx.decompress(dst, src)
    } catch (err) {
      throw escpError('ESCP_ERR_CORRUPT_BLOCK', (err as Error).message)
    }
  }
}
