// Buffers for the posix engine: 4 KiB-aligned native memory seen by JavaScript as ordinary
// Uint8Arrays, so O_DIRECT I/O, node:crypto, zstd and sockets all use the same bytes. dispose()
// frees them at once instead of waiting for the garbage collector.
import type { BufferPool } from '@escp/core/plugin'
import { escpError } from '@escp/core/plugin'
import type { PosixBinding } from './binding'

export class AlignedBufferPool implements BufferPool {
  private readonly free: Uint8Array[] = []
  private readonly lent = new Set<Uint8Array>()
  private disposed = false

  constructor(
    private readonly binding: PosixBinding,
    readonly bufferSizeBytes: number,
    private readonly count: number,
  ) {}

  acquire(): Uint8Array {
    if (this.disposed) throw escpError('ESCP_ERR_BAD_ARGUMENT', 'this buffer pool was disposed')
    let buf = this.free.pop()
    if (!buf) {
      if (this.lent.size >= this.count) {
        throw escpError('ESCP_ERR_BAD_ARGUMENT', `all ${this.count} buffers of this pool are in use`)
      }
      buf = new Uint8Array(this.binding.allocate(this.bufferSizeBytes))
    }
    this.lent.add(buf)
    return buf
  }

  release(buf: Uint8Array): void {
    if (!this.lent.delete(buf)) {
      throw escpError('ESCP_ERR_BAD_ARGUMENT', `a ${buf.byteLength}-byte buffer that this pool did not lend was given back`)
    }
    if (this.disposed) this.binding.release(buf.buffer as ArrayBuffer)
    else this.free.push(buf)
  }

  /** Frees every idle buffer now, and each lent one when it is given back. */
  dispose(): void {
    this.disposed = true
    for (const buf of this.free.splice(0)) this.binding.release(buf.buffer as ArrayBuffer)
  }
}
