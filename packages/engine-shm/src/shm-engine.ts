// The 'shm' engine. As a sender it sends streams of a region as files: the source
// /dev/shm/escp-REGION/STREAM is the stream STREAM of region REGION, read block by block from its
// slots as the transfer asks for them; other sources of the same command are read as files
// (through the portable node-fs engine). As a receiver it hands each arriving file to a
// consumer region (ESCP_SHM_REGION) as the stream named by the file's name, and creates no files.
import path from 'node:path'
import type { Availability, BufferPool, EnginePath, EngineSource, Extent, FileAttributes, IoEngine, OpenReadOptions, OpenWriteOptions, ReadHandle, ReadOrEnd, WriteHandle } from '@escp/core/plugin'
import { AVAILABLE, displayPath, escpError, isEscpError, unavailable } from '@escp/core/plugin'
import { NodeFsEngine, SimpleBufferPool } from '@escp/core/builtin'
import { FOREVER, STREAM_ABORTED, STREAM_OPEN, loadBinding } from './binding'
import type { ShmBinding, StreamState } from './binding'
import { ShmRegion, shmError } from './region'

/** Where a sender finds regions: /dev/shm/escp-REGION/STREAM names stream STREAM of REGION. */
export const SHM_SOURCE_PREFIX = '/dev/shm/escp-'
/** The region a receiving 'shm' engine delivers files into. */
export const SHM_REGION_ENV = 'ESCP_SHM_REGION'
/** How long a sender waits for a named stream to begin (default 5000 ms). */
export const SHM_ATTACH_ENV = 'ESCP_SHM_ATTACH_MS'

export interface ShmEngineOptions {
  /** The receiving side's region; defaults to $ESCP_SHM_REGION. */
  region?: string
  attachTimeoutMs?: number
}

/** Region and stream of a source path, or null when the path is not one of a region's streams. */
export function parseShmSource(source: string): { region: string; stream: string } | null {
  if (!source.startsWith(SHM_SOURCE_PREFIX)) return null
  const rest = source.slice(SHM_SOURCE_PREFIX.length)
  const slash = rest.indexOf('/')
  if (slash <= 0 || slash === rest.length - 1) return null
  return { region: rest.slice(0, slash), stream: rest.slice(slash + 1) }
}

export class ShmEngine implements IoEngine {
  readonly name = 'shm'
  /** Writes create no files: a receiver hands each file to the consumer region instead. */
  readonly discards = true
  private readonly load = loadBinding()
  // One mapping per region and thread; a transfer's worker threads each have their own engine.
  // A thread's mappings go when it exits (the addon's cleanup hook).
  private readonly regions = new Map<string, Promise<ShmRegion>>()
  private readonly attachTimeoutMs: number
  private readonly files = new NodeFsEngine()

  constructor(private readonly options: ShmEngineOptions = {}) {
    const env = Number(process.env[SHM_ATTACH_ENV])
    this.attachTimeoutMs = options.attachTimeoutMs ?? (Number.isInteger(env) && env >= 0 ? env : 5000)
  }

  available(): Availability {
    return this.load.ok ? AVAILABLE : unavailable(this.load.reason)
  }

  private get binding(): ShmBinding {
    if (!this.load.ok) throw escpError('ESCP_ERR_PLUGIN_UNAVAILABLE', 'engine', this.name, this.load.reason)
    return this.load.binding
  }

  createBufferPool(bufferSizeBytes: number, count: number): BufferPool {
    return new SimpleBufferPool(bufferSizeBytes, count)
  }

  private region(name: string): Promise<ShmRegion> {
    let r = this.regions.get(name)
    if (!r) {
      r = ShmRegion.open(name)
      this.regions.set(name, r)
      r.catch(() => this.regions.delete(name))
    }
    return r
  }

  async describeSource(source: string): Promise<EngineSource | null> {
    const named = parseShmSource(source)
    if (!named) return null
    const { state } = await this.attach(named.region, named.stream, source)
    // A stream begun without its size and still open is sent as a file whose size comes at its end.
    return { name: path.posix.basename(named.stream), sizeBytes: state.sizeBytes < 0 ? null : state.sizeBytes, mode: 0o644, mtimeNs: BigInt(Date.now()) * 1_000_000n }
  }

  // Becomes the consumer of the stream (the threads of this process share that role).
  private async attach(regionName: string, streamName: string, shown: string): Promise<{ region: ShmRegion; stream: number; state: StreamState }> {
    const region = await this.region(regionName)
    const b = this.binding
    let stream: number
    try {
      stream = await b.attach(region.id, streamName, this.attachTimeoutMs)
    } catch (err) {
      const e = shmError(err, `stream '${streamName}' of region '${regionName}'`)
      if (e.errno === 'ENOENT') throw escpError('ESCP_ERR_SHM', `'${shown}'`, `no stream of that name began within ${this.attachTimeoutMs} ms (${SHM_ATTACH_ENV})`)
      if (e.errno === 'EBUSY') {
        const other = b.find(region.id, streamName)
        const pid = other >= 0 ? b.state(region.id, other).consumerPid : 0
        throw escpError('ESCP_ERR_SHM', `'${shown}'`, `another process${pid ? ` (pid ${pid})` : ''} is its consumer; a stream has one`)
      }
      throw e
    }
    const state = b.state(region.id, stream)
    if (state.state === STREAM_ABORTED) throw escpError('ESCP_ERR_SHM', `'${shown}'`, `the stream was aborted: ${state.error}`)
    return { region, stream, state }
  }

  async openRead(p: EnginePath, _options: OpenReadOptions = {}): Promise<ReadHandle> {
    const shown = displayPath(p)
    const named = parseShmSource(shown)
    if (!named) return this.files.openRead(p)
    const { region, stream, state } = await this.attach(named.region, named.stream, shown)
    return new ShmReadHandle(this.binding, region, stream, p, state.sizeBytes < 0 ? null : state.sizeBytes)
  }

  async openWrite(p: EnginePath, options: OpenWriteOptions = {}): Promise<WriteHandle> {
    const shown = displayPath(p)
    const regionName = this.options.region ?? process.env[SHM_REGION_ENV]
    if (!regionName) throw escpError('ESCP_ERR_SHM', `'${shown}'`, `a receiving shm engine delivers into the region named by ${SHM_REGION_ENV}; set it where escp receives`)
    const region = await this.region(regionName)
    const b = this.binding
    let stream: number
    try {
      stream = b.begin(region.id, shown, options.sizeBytes ?? -1)
    } catch (err) {
      const e = shmError(err, region.describe(shown))
      if (e.errno !== 'EEXIST') throw e
      // Another worker thread of this transfer began it: blocks of one file come from several.
      stream = b.find(region.id, shown)
      if (stream < 0 || b.state(region.id, stream).producerPid !== process.pid) {
        throw escpError('ESCP_ERR_SHM', region.describe(shown), 'a stream of that name is still open or unread in the region')
      }
    }
    return new ShmWriteHandle(b, region, stream, p, options.sizeBytes ?? null)
  }
}

class ShmReadHandle implements ReadHandle {
  private closed = false

  constructor(
    private readonly b: ShmBinding,
    private readonly region: ShmRegion,
    private readonly stream: number,
    readonly path: EnginePath,
    /** null while a stream begun without its size is open. */
    readonly sizeBytes: number | null,
  ) {}

  async extents(): Promise<Extent[] | null> {
    return null
  }

  // The transfer's blocks must be the region's: each read takes exactly one slot.
  async read(buf: Uint8Array, offset: number): Promise<number> {
    if (this.sizeBytes !== null && offset >= this.sizeBytes) return 0
    return this.take(buf, offset, this.sizeBytes === null ? this.region.blockSizeBytes : Math.min(this.region.blockSizeBytes, this.sizeBytes - offset))
  }

  // escp_shm_take gives the block at `offset`, or EOF once the stream has ended at or before it;
  // the stream's size is then its final one. A short block is the stream's last.
  async readOrEnd(buf: Uint8Array, offset: number): Promise<ReadOrEnd> {
    const n = await this.take(buf, offset, this.region.blockSizeBytes)
    if (n === buf.byteLength) return { bytesRead: n, endBytes: null }
    if (n > 0) return { bytesRead: n, endBytes: offset + n }
    const s = this.b.state(this.region.id, this.stream)
    // Only a producer that begins a stream of the same name again could have changed it since.
    if (s.sizeBytes < 0 || s.sizeBytes > offset) throw escpError('ESCP_ERR_SHM', `'${displayPath(this.path)}'`, 'the stream ended and was begun again while it was sent')
    return { bytesRead: 0, endBytes: s.sizeBytes }
  }

  private async take(buf: Uint8Array, offset: number, blockBytes: number): Promise<number> {
    const shown = displayPath(this.path)
    if (this.closed) throw escpError('ESCP_ERR_BAD_ARGUMENT', `read on a closed handle of '${shown}'`)
    const bs = this.region.blockSizeBytes
    if (offset % bs !== 0 || buf.byteLength !== blockBytes) {
      throw escpError('ESCP_ERR_SHM', `'${shown}'`, `the region's blocks are ${bs} bytes and the transfer's are not; run escp with --blocksize ${bs}`)
    }
    try {
      return await this.b.readInto(this.region.id, this.stream, offset, FOREVER, buf)
    } catch (err) {
      throw shmError(err, `'${shown}'`)
    }
  }

  async close(): Promise<void> {
    this.closed = true
  }
}

/**
 * Blocks of one received file into its stream. The stream is begun with the file's size, or
 * with none for a file whose size is known only at its end, and no write ends it: once escp has
 * verified the whole file, the receiver opens it once more, with its final size, and finishes
 * that handle, which ends the stream; the consumer therefore sees the end of a stream only after
 * its digest was checked. A handle that wrote nothing and is closed unfinished is how the
 * receiver gives a file up: the stream is aborted, with the consumer told so.
 */
class ShmWriteHandle implements WriteHandle {
  private closed = false
  private wrote = false

  constructor(
    private readonly b: ShmBinding,
    private readonly region: ShmRegion,
    private readonly stream: number,
    readonly path: EnginePath,
    private readonly sizeBytes: number | null,
  ) {}

  async write(data: Uint8Array, offset: number): Promise<void> {
    const shown = displayPath(this.path)
    if (this.closed) throw escpError('ESCP_ERR_BAD_ARGUMENT', `write on a closed handle of '${shown}'`)
    const bs = this.region.blockSizeBytes
    const fits = this.sizeBytes === null ? data.byteLength > 0 && data.byteLength <= bs : data.byteLength === Math.min(bs, this.sizeBytes - offset)
    if (offset % bs !== 0 || !fits) {
      throw escpError('ESCP_ERR_SHM', `'${shown}'`, `the region's blocks are ${bs} bytes and the transfer's are not; run escp with --blocksize ${bs}`)
    }
    this.wrote = true
    try {
      await this.b.writeFrom(this.region.id, this.stream, offset, FOREVER, data, false)
    } catch (err) {
      throw shmError(err, `'${shown}'`)
    }
  }

  async truncate(sizeBytes: number): Promise<void> {
    if (sizeBytes !== this.sizeBytes) throw escpError('ESCP_ERR_SHM', `'${displayPath(this.path)}'`, `a stream's size is fixed when it begins, or when it ends (${this.sizeBytes ?? 'unknown'} bytes here)`)
  }

  // Ends the stream: every byte of the final size has been delivered (and escp verified them).
  async finish(_attributes: Partial<FileAttributes> = {}): Promise<void> {
    const shown = `'${displayPath(this.path)}'`
    if (!this.closed) {
      try {
        const s = this.b.state(this.region.id, this.stream)
        if (s.state === STREAM_OPEN) {
          if (this.sizeBytes === null) throw escpError('ESCP_ERR_SHM', shown, 'a stream is finished by a handle given its final size')
          if ((s.sizeBytes >= 0 && s.sizeBytes !== this.sizeBytes) || s.committedBytes !== this.sizeBytes) {
            throw escpError('ESCP_ERR_SHM', shown, `${s.committedBytes} bytes were delivered into the stream, not its ${this.sizeBytes}`)
          }
          this.b.end(this.region.id, this.stream)
        } else if (s.state === STREAM_ABORTED) {
          // The consumer gave the stream up: the file did not reach it.
          throw escpError('ESCP_ERR_SHM', shown, `the stream was aborted: ${s.error}`)
        } else if (this.sizeBytes === null || s.sizeBytes !== this.sizeBytes) {
          throw escpError('ESCP_ERR_SHM', shown, `the stream ended at ${s.sizeBytes} bytes, not its ${this.sizeBytes ?? 'unknown size'}`)
        }
      } catch (err) {
        throw isEscpError(err) ? err : shmError(err, shown)
      }
    }
    await this.close()
  }

  // Closing unfinished aborts the stream, so its consumer does not wait on: always from the
  // handle that wrote nothing (the receiver giving the file up), and from a worker's handle of a
  // file of known size when bytes are missing (the worker is closing after a failure).
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    let s: StreamState
    try {
      s = this.b.state(this.region.id, this.stream)
    } catch {
      return
    }
    if (s.state !== STREAM_OPEN || s.producerPid !== process.pid || this.sizeBytes === null) return
    if (!this.wrote || s.committedBytes < this.sizeBytes) {
      try {
        this.b.abort(this.region.id, this.stream, 'the transfer of this file failed')
      } catch {
        // Aborted or ended meanwhile by another thread.
      }
    }
  }
}
