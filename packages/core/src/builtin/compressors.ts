// Block compressors: `none`, and zstd through zstd-napi's low-level contexts, which compress
// into the caller's buffer (the high-level API allocates a worst-case buffer per call).
import type * as ZstdBinding from 'zstd-napi/binding'
import { escpError, escpErrorWith, isEscpError } from '../errors'
import type { EscpError } from '../errors'
import { AVAILABLE, unavailable } from '../contracts/availability'
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

// zstd-napi is a native module, which fails to load where no binary matches this Node.js. It is
// loaded on first use, once per thread, so that such a machine lists zstd as unavailable with
// the reason instead of failing the whole built-in plugin.
let zstdLoad: { binding: typeof ZstdBinding } | { reason: string } | undefined

function loadZstd(): { binding: typeof ZstdBinding } | { reason: string } {
  if (zstdLoad === undefined) {
    try {
      zstdLoad = { binding: require('zstd-napi/binding') as typeof ZstdBinding }
    } catch (err) {
      zstdLoad = { reason: `zstd-napi's native module cannot be loaded: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}` }
    }
  }
  return zstdLoad
}

function zstdBinding(): typeof ZstdBinding {
  const z = loadZstd()
  if ('reason' in z) throw escpError('ESCP_ERR_PLUGIN_UNAVAILABLE', 'compressor', 'zstd', z.reason)
  return z.binding
}

// The text zstd-napi gives the error (ZSTD_getErrorName of dstSize_tooSmall); its errors carry
// no code, so the text is all there is to match.
const DESTINATION_TOO_SMALL = 'Destination buffer is too small'

// Any other failure (an argument zstd rejects, no memory for a context) is not a property of
// the block, so it must not pass for "would not shrink" and send the block raw.
function compressorFailure(err: unknown): EscpError {
  if (isEscpError(err)) return err
  return escpErrorWith('ESCP_ERR_COMPRESSOR', { cause: err }, 'zstd', err instanceof Error ? err.message : String(err))
}

/** zstd, one frame per block. Contexts are reused, so one instance serves one thread. */
export class ZstdCompressor implements Compressor {
  readonly name = 'zstd'
  // zstd's own default. The primitives bench (bench/RESULTS.md) measured it compressing
  // repetitive log-like text at ~1 GB/s on one thread (7-9x smaller), and random data, which it
  // finds incompressible, at 5-10 GB/s. Other data will differ.
  readonly defaultLevel = 3
  // Created on first use: a constructor must not throw, and creating them needs the binding.
  private cctx: ZstdBinding.CCtx | undefined
  private dctx: ZstdBinding.DCtx | undefined
  private level = -Infinity

  available(): Availability {
    const z = loadZstd()
    return 'reason' in z ? unavailable(z.reason) : AVAILABLE
  }

  compress(src: Uint8Array, dst: Uint8Array, level: number = this.defaultLevel): number | null {
    let written: number
    try {
      const zstd = zstdBinding()
      this.cctx ??= new zstd.CCtx()
      if (level !== this.level) {
        this.cctx.setParameter(zstd.CParameter.compressionLevel, level)
        this.level = level
      }
      written = this.cctx.compress2(dst, src)
    } catch (err) {
      // The block did not shrink enough to fit in `dst`: the contract's "not smaller".
      if (err instanceof Error && err.message === DESTINATION_TOO_SMALL) return null
      throw compressorFailure(err)
    }
    return written < src.byteLength ? written : null
  }

  decompress(src: Uint8Array, dst: Uint8Array): number {
    let dctx: ZstdBinding.DCtx
    try {
      dctx = this.dctx ??= new (zstdBinding().DCtx)()
    } catch (err) {
      throw compressorFailure(err)
    }
    try {
      return dctx.decompress(dst, src)
    } catch (err) {
      throw escpError('ESCP_ERR_CORRUPT_BLOCK', (err as Error).message)
    }
  }
}
