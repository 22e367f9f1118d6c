// The dummy engine measures everything but the disk: as a source it stat()s a file for its
// size and "reads" by returning lengths without touching the buffer; as a sink it discards.
// `truncate -s 100G big; escp --ioengine dummy big host:` benchmarks network and crypto alone.
import fs from 'node:fs'
import { ioError } from '../errors'
import { AVAILABLE } from '../contracts/availability'
import type { Availability } from '../contracts/availability'
import type { BufferPool, EnginePath, Extent, IoEngine, ReadHandle, WriteHandle } from '../contracts/io-engine'
import { SimpleBufferPool } from './node-fs-engine'

export class DummyEngine implements IoEngine {
  readonly name = 'dummy'
  readonly discards = true

  available(): Availability {
    return AVAILABLE
  }

  createBufferPool(bufferSizeBytes: number, count: number): BufferPool {
    return new SimpleBufferPool(bufferSizeBytes, count)
  }

  async openRead(path: EnginePath): Promise<ReadHandle> {
    let sizeBytes: number
    try {
      sizeBytes = (await fs.promises.stat(path)).size
    } catch (err) {
      throw ioError(err, 'stat', path)
    }
    return {
      path,
      sizeBytes,
      extents: async (): Promise<Extent[] | null> => null,
      read: async (buf: Uint8Array, offset: number) => Math.max(0, Math.min(buf.byteLength, sizeBytes - offset)),
      close: async () => {},
    }
  }

  async openWrite(path: EnginePath): Promise<WriteHandle> {
    return {
      path,
      write: async () => {},
      truncate: async () => {},
      finish: async () => {},
      close: async () => {},
    }
  }
}
