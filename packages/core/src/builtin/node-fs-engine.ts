// The portable engine: node:fs on libuv's thread pool. It works wherever Node does and is the
// fallback when no native engine loads. It cannot do O_DIRECT (Node's buffers are not
// aligned), preallocation or hole detection; those come with the native engines.
import fs from 'node:fs'
import type { FileHandle } from 'node:fs/promises'
import { escpError, ioError } from '../errors'
import { AVAILABLE } from '../contracts/availability'
import type { Availability } from '../contracts/availability'
import type {
  BufferPool,
  EnginePath,
  Extent,
  FileAttributes,
  IoEngine,
  OpenReadOptions,
  OpenWriteOptions,
  ReadHandle,
  WriteHandle,
} from '../contracts/io-engine'
import { MAX_FILE_SIZE_BYTES, displayPath } from '../contracts/io-engine'

const { O_RDONLY, O_WRONLY, O_CREAT, O_TRUNC, O_NOFOLLOW } = fs.constants

/** A fixed set of reusable buffers; handing out more than `count` at once is a caller bug. */
export class SimpleBufferPool implements BufferPool {
  private readonly free: Uint8Array[] = []
  private created = 0

  constructor(
    readonly bufferSizeBytes: number,
    private readonly count: number,
    private readonly allocate: (size: number) => Uint8Array = (size) => Buffer.allocUnsafeSlow(size),
  ) {}

  acquire(): Uint8Array {
    const buf = this.free.pop()
    if (buf) return buf
    if (this.created >= this.count) {
      throw escpError('ESCP_ERR_BAD_ARGUMENT', `all ${this.count} buffers of this pool are in use`)
    }
    this.created++
    return this.allocate(this.bufferSizeBytes)
  }

  release(buf: Uint8Array): void {
    if (buf.byteLength !== this.bufferSizeBytes) {
      throw escpError('ESCP_ERR_BAD_ARGUMENT', `a ${buf.byteLength}-byte buffer does not belong to this pool`)
    }
    this.free.push(buf)
  }
}

export class NodeFsEngine implements IoEngine {
  readonly name = 'node-fs'

  available(): Availability {
    return AVAILABLE
  }

  createBufferPool(bufferSizeBytes: number, count: number): BufferPool {
    return new SimpleBufferPool(bufferSizeBytes, count)
  }

  async openRead(path: EnginePath, _options?: OpenReadOptions): Promise<ReadHandle> {
    let fh: FileHandle
    try {
      // O_NOFOLLOW: a symlink planted at a listed name is not read through (sources named
      // through one are read at their real path).
      fh = await fs.promises.open(path, O_RDONLY | O_NOFOLLOW)
    } catch (err) {
      throw ioError(err, 'open', path)
    }
    try {
      const st = await fh.stat()
      if (st.size > MAX_FILE_SIZE_BYTES) throw escpError('ESCP_ERR_FILE_TOO_LARGE', displayPath(path), st.size)
      return new NodeFsReadHandle(path, fh, st.size)
    } catch (err) {
      await fh.close().catch(() => {})
      throw ioError(err, 'fstat', path)
    }
  }

  async openWrite(path: EnginePath, options: OpenWriteOptions = {}): Promise<WriteHandle> {
    // O_NOFOLLOW: a symlink planted at the destination name must not redirect the write.
    const flags = options.create === false ? O_WRONLY | O_NOFOLLOW : O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW
    let fh: FileHandle
    try {
      fh = await fs.promises.open(path, flags, options.mode ?? 0o644)
    } catch (err) {
      throw ioError(err, 'open', path)
    }
    return new NodeFsWriteHandle(path, fh, options.sparse === true)
  }
}

class NodeFsReadHandle implements ReadHandle {
  constructor(
    readonly path: EnginePath,
    private readonly fh: FileHandle,
    readonly sizeBytes: number,
  ) {}

  async extents(): Promise<Extent[] | null> {
    return null
  }

  async read(buf: Uint8Array, offset: number): Promise<number> {
    let done = 0
    try {
      while (done < buf.byteLength) {
        const { bytesRead } = await this.fh.read(buf, done, buf.byteLength - done, offset + done)
        if (bytesRead === 0) break
        done += bytesRead
      }
    } catch (err) {
      throw ioError(err, 'read', this.path)
    }
    return done
  }

  async close(): Promise<void> {
    await this.fh.close().catch((err) => {
      throw ioError(err, 'close', this.path)
    })
  }
}

// Compared with Buffer.equals, which is memcmp in C++: no per-byte loop in JavaScript.
let zeros = Buffer.alloc(0)
function isAllZero(data: Uint8Array): boolean {
  if (zeros.byteLength < data.byteLength) zeros = Buffer.alloc(data.byteLength)
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength).equals(zeros.subarray(0, data.byteLength))
}

class NodeFsWriteHandle implements WriteHandle {
  private closed = false

  constructor(
    readonly path: EnginePath,
    private readonly fh: FileHandle,
    private readonly sparse: boolean,
  ) {}

  async write(data: Uint8Array, offset: number): Promise<void> {
    if (this.sparse && isAllZero(data)) return
    let done = 0
    try {
      while (done < data.byteLength) {
        const { bytesWritten } = await this.fh.write(data, done, data.byteLength - done, offset + done)
        done += bytesWritten
      }
    } catch (err) {
      throw ioError(err, 'write', this.path)
    }
  }

  async truncate(sizeBytes: number): Promise<void> {
    try {
      await this.fh.truncate(sizeBytes)
    } catch (err) {
      throw ioError(err, 'ftruncate', this.path)
    }
  }

  async finish(attributes: Partial<FileAttributes> = {}): Promise<void> {
    try {
      if (attributes.uid !== undefined && attributes.gid !== undefined) await this.fh.chown(attributes.uid, attributes.gid)
      // chmod after chown: chown clears the set-id bits.
      if (attributes.mode !== undefined) await this.fh.chmod(attributes.mode & 0o7777)
      if (attributes.atimeNs !== undefined && attributes.mtimeNs !== undefined) {
        // fs.futimes takes seconds as a double: microsecond precision, not nanoseconds.
        await this.fh.utimes(Number(attributes.atimeNs) / 1e9, Number(attributes.mtimeNs) / 1e9)
      }
    } catch (err) {
      await this.close().catch(() => {})
      throw ioError(err, 'fchmod/fchown/futimes', this.path)
    }
    await this.close()
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    try {
      await this.fh.close()
    } catch (err) {
      throw ioError(err, 'close', this.path)
    }
  }
}
