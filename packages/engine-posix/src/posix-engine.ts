// The posix engine: reads and writes at offsets on native I/O threads, O_DIRECT where the file
// system takes it (falling back to buffered I/O, once noted at debug level), preallocation,
// data extents from SEEK_DATA/SEEK_HOLE, and attributes with nanosecond times.
import { debuglog, getSystemErrorName } from 'node:util'
import type {
  Availability,
  BufferPool,
  CreateFileOptions,
  DirectoryEntry,
  EnginePath,
  ListDirectoryOptions,
  Extent,
  FileAttributes,
  IoEngine,
  OpenReadOptions,
  OpenWriteOptions,
  PluginOptions,
  ReadHandle,
  WriteHandle,
} from '@escp/core/plugin'
import { AVAILABLE, MAX_FILE_SIZE_BYTES, displayPath, escpError, ioError, unavailable } from '@escp/core/plugin'
import { AlignedBufferPool } from './aligned-pool'
import { LIST_FIELD, LIST_FIELDS, OPEN_CREATE, OPEN_DIRECT, OPEN_WRITE, loadBinding } from './binding'
import type { BindingLoad, CreateWholeCall, NativeError, NativeStats, PosixBinding, ReadWholeCall } from './binding'

const debug = debuglog('escp-posix')
let directRefusalNoted = false

/** A native error as Node's fs would report it: code 'ENOSPC', errno, syscall. */
export function nativeIoError(err: unknown, syscall: string, path: EnginePath): Error {
  const e = err as Partial<NativeError> & { code?: string }
  if (typeof e?.errno === 'number' && e.code === undefined) {
    e.code = getSystemErrorName(e.errno)
    e.message = `${e.code}: ${e.message}`
  }
  return ioError(err, e?.syscall ?? syscall, displayPath(path))
}

/**
 * Whole-file calls made during one turn of the event loop go to the I/O threads together, in
 * jobs of up to this many files: a job wakes a thread, and a thread woken per file cost more than
 * the files' own I/O (10,000 files of 1-64 KiB). Several jobs keep several reads of a cold disk
 * under way.
 */
const WHOLE_FILES_PER_JOB = 16

interface Queued<Call> {
  call: Call
  resolve: (n: number) => void
  reject: (err: unknown) => void
}

/** Calls gathered until the end of this turn of the event loop, then submitted in jobs. */
class TurnBatch<Call> {
  private queued: Queued<Call>[] = []

  constructor(private readonly submit: (calls: Call[]) => Promise<number>[]) {}

  add(call: Call): Promise<number> {
    return new Promise((resolve, reject) => {
      if (this.queued.length === 0) setImmediate(() => this.flush())
      this.queued.push({ call, resolve, reject })
    })
  }

  private flush(): void {
    const queued = this.queued
    this.queued = []
    for (let i = 0; i < queued.length; i += WHOLE_FILES_PER_JOB) {
      const part = queued.slice(i, i + WHOLE_FILES_PER_JOB)
      let promises: Promise<number>[]
      try {
        promises = this.submit(part.map((q) => q.call))
      } catch {
        // The native side refused an argument of one call: each goes alone, and only that fails.
        for (const q of part) this.submitOne(q)
        continue
      }
      promises.forEach((p, k) => p.then(part[k].resolve, part[k].reject))
    }
  }

  private submitOne(q: Queued<Call>): void {
    try {
      this.submit([q.call])[0].then(q.resolve, q.reject)
    } catch (err) {
      q.reject(err)
    }
  }
}

const S_IFMT = 0o170000
const TYPES: Record<number, DirectoryEntry['type']> = { 0o100000: 'file', 0o040000: 'directory', 0o120000: 'symlink' }
const NS_PER_S = 1_000_000_000n

// The entries listDirectory's numbers describe, each named by a view into `names`, made as they
// are iterated.
function* directoryEntries(dir: EnginePath, names: Buffer, meta: Float64Array): Generator<DirectoryEntry> {
  const F = LIST_FIELD
  for (let at = 0; at < meta.length; at += LIST_FIELDS) {
    const name = names.subarray(meta[at + F.nameStart], meta[at + F.nameStart] + meta[at + F.nameLength])
    const type = TYPES[meta[at + F.mode] & S_IFMT] ?? 'other'
    const e: DirectoryEntry = {
      name,
      type,
      mode: meta[at + F.mode] & 0o7777,
      uid: meta[at + F.uid],
      gid: meta[at + F.gid],
      sizeBytes: meta[at + F.size],
      allocatedBytes: meta[at + F.allocated],
      atimeNs: BigInt(meta[at + F.atimeSec]) * NS_PER_S + BigInt(meta[at + F.atimeNsec]),
      mtimeNs: BigInt(meta[at + F.mtimeSec]) * NS_PER_S + BigInt(meta[at + F.mtimeNsec]),
    }
    if (type === 'symlink') e.linkTarget = names.subarray(meta[at + F.linkStart], meta[at + F.linkStart] + meta[at + F.linkLength])
    const errno = meta[at + F.errno]
    if (errno !== 0) {
      const syscall = type === 'symlink' ? 'readlink' : 'lstat'
      const path = Buffer.concat([typeof dir === 'string' ? Buffer.from(dir) : dir, Buffer.from('/'), name])
      e.error = nativeIoError(Object.assign(new Error(syscall), { errno: -errno, syscall }), syscall, path)
    }
    yield e
  }
}

export interface PosixEngineOptions {
  /**
   * Buffered writes go uncached (RWF_DONTCACHE) where the file system takes it (default true);
   * false keeps them in the page cache, and a receiver then bypasses it with O_DIRECT.
   */
  uncachedWrites?: boolean
}

/** Plugin option `uncachedWrites` (PosixEngineOptions.uncachedWrites), for posix and the engines built on it. */
export function uncachedWritesOption(options: PluginOptions): boolean | undefined {
  const v = options.uncachedWrites
  if (v !== undefined && typeof v !== 'boolean') throw escpError('ESCP_ERR_BAD_ARGUMENT', `the plugin option uncachedWrites must be true or false, not ${JSON.stringify(v)}`)
  return v
}

export class PosixEngine implements IoEngine {
  readonly name: string = 'posix'
  /** Undefined where the native module did not load. */
  readonly directAlignment: number | undefined
  private readonly wholeReads = new TurnBatch<ReadWholeCall>((calls) => this.binding.readWholeMany(calls))
  private readonly wholeCreates = new TurnBatch<CreateWholeCall>((calls) => this.binding.createWholeMany(calls))
  private readonly renames = new TurnBatch<[EnginePath, EnginePath]>((calls) => this.binding.renameMany(calls))
  private readonly uncachedDirs = new Map<string, Promise<boolean>>()

  private readonly uncached: boolean

  /**
   * `load`: the native calls the engine makes. Another engine built on this one passes its own
   * (uring passes these with its reads and writes going through io_uring).
   */
  constructor(
    private readonly load: BindingLoad = loadBinding(),
    options: PosixEngineOptions = {},
  ) {
    this.directAlignment = load.ok ? load.binding.alignment : undefined
    this.uncached = options.uncachedWrites !== false
  }

  available(): Availability {
    return this.load.ok ? AVAILABLE : unavailable(this.load.reason)
  }

  private get binding(): PosixBinding {
    if (!this.load.ok) throw escpError('ESCP_ERR_PLUGIN_UNAVAILABLE', 'engine', this.name, this.load.reason)
    return this.load.binding
  }

  /** Native counters, for tests that check nothing leaks. */
  stats(): NativeStats {
    return this.binding.stats()
  }

  createBufferPool(bufferSizeBytes: number, count: number): BufferPool {
    return new AlignedBufferPool(this.binding, bufferSizeBytes, count)
  }

  async openRead(path: EnginePath, options: OpenReadOptions = {}): Promise<ReadHandle> {
    const b = this.binding
    let r
    try {
      r = await b.open(path, options.direct ? OPEN_DIRECT : 0, 0, 0)
    } catch (err) {
      throw nativeIoError(err, 'open', path)
    }
    if (!r.cached) noteDirect(options.direct, r.direct, path)
    if (r.size > MAX_FILE_SIZE_BYTES) {
      await b.close(r.fd, false, 0, 0).catch(() => {})
      throw escpError('ESCP_ERR_FILE_TOO_LARGE', displayPath(path), r.size)
    }
    return new PosixReadHandle(b, path, r.fd, r.size, r.direct, r.cached)
  }

  async openWrite(path: EnginePath, options: OpenWriteOptions = {}): Promise<WriteHandle> {
    const b = this.binding
    const flags = OPEN_WRITE | (options.create === false ? 0 : OPEN_CREATE) | (options.direct ? OPEN_DIRECT : 0)
    // A file written sparse keeps its holes: preallocating would fill them.
    const prealloc = options.sparse || options.preallocate === false ? 0 : (options.sizeBytes ?? 0)
    let r
    try {
      r = await b.open(path, flags, options.mode ?? 0o644, prealloc)
    } catch (err) {
      throw nativeIoError(err, 'open', path)
    }
    noteDirect(options.direct, r.direct, path)
    return new PosixWriteHandle(b, path, r.fd, r.direct, options.sparse === true, options.sizeBytes, this.uncached)
  }

  /**
   * Buffered writes through handles go uncached where the file system takes it (the native
   * WriteAt), unless the engine was made with uncachedWrites false: asked once per directory.
   */
  writesUncached(dir: EnginePath): Promise<boolean> {
    if (!this.uncached) return Promise.resolve(false)
    const key = typeof dir === 'string' ? dir : Buffer.from(dir).toString('latin1')
    let answer = this.uncachedDirs.get(key)
    if (!answer) {
      answer = this.binding.writesUncached(dir).then(
        (r) => r === 1,
        (err) => {
          this.uncachedDirs.delete(key)
          throw nativeIoError(err, 'open', dir)
        },
      )
      this.uncachedDirs.set(key, answer)
    }
    return answer
  }

  async listDirectory(dir: EnginePath, options: ListDirectoryOptions = {}): Promise<Iterable<DirectoryEntry>> {
    let r
    try {
      r = await this.binding.listDirectory(dir, options.noFollow === true)
    } catch (err) {
      throw nativeIoError(err, 'scandir', dir)
    }
    return directoryEntries(dir, r.names, r.meta)
  }

  readFile(path: EnginePath, buf: Uint8Array): Promise<number> {
    return this.wholeReads.add([path, buf]).catch((err) => Promise.reject(nativeIoError(err, 'open', path)))
  }

  async rename(from: EnginePath, to: EnginePath): Promise<void> {
    try {
      await this.renames.add([from, to])
    } catch (err) {
      throw nativeIoError(err, 'rename', to)
    }
  }

  createFile(path: EnginePath, data: Uint8Array, options: CreateFileOptions): Promise<void> {
    return this.createWhole(path, data, options)
  }

  placeFile(final: EnginePath, temp: EnginePath, data: Uint8Array, options: CreateFileOptions): Promise<void> {
    return this.createWhole(temp, data, options, final)
  }

  // One createWholeMany call, with the final name to put the file at when there is one; errors
  // name the file's final name, or its only one.
  private async createWhole(path: EnginePath, data: Uint8Array, options: CreateFileOptions, final?: EnginePath): Promise<void> {
    const a = nativeAttributes(options.attributes ?? {})
    const call: CreateWholeCall = [path, data, options.mode & 0o7777, options.sizeBytes, options.sparse === true, a.mode, a.uid, a.gid, a.times]
    if (final !== undefined) call.push(final)
    try {
      await this.wholeCreates.add(call)
    } catch (err) {
      throw nativeIoError(err, 'open', final ?? path)
    }
  }
}

function noteDirect(asked: boolean | undefined, got: boolean, path: EnginePath): void {
  if (!asked || got || directRefusalNoted) return
  directRefusalNoted = true
  debug('O_DIRECT refused for %s (file system without direct I/O); using buffered I/O with fadvise', displayPath(path))
}

/** Tracks a handle's operations so that close() waits for them: a descriptor is never closed under I/O. */
class Operations {
  private readonly pending = new Set<Promise<unknown>>()
  closed = false

  run<T>(what: string, path: EnginePath, op: () => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(escpError('ESCP_ERR_BAD_ARGUMENT', `${what} on a closed handle of '${displayPath(path)}'`))
    const p = op()
    this.pending.add(p)
    const done = (): void => void this.pending.delete(p)
    p.then(done, done)
    return p
  }

  async drain(): Promise<void> {
    this.closed = true
    while (this.pending.size > 0) await Promise.allSettled([...this.pending])
  }
}

class PosixReadHandle implements ReadHandle {
  private readonly ops = new Operations()

  constructor(
    private readonly b: PosixBinding,
    readonly path: EnginePath,
    private readonly fd: number,
    readonly sizeBytes: number,
    private readonly direct: boolean,
    /** A source found in the page cache: read from it and left in it. */
    private readonly cached: boolean,
  ) {}

  extents(): Promise<Extent[] | null> {
    return this.ops.run('extents', this.path, async () => {
      let flat: Float64Array | null
      try {
        flat = await this.b.extents(this.fd, this.sizeBytes)
      } catch (err) {
        throw nativeIoError(err, 'lseek', this.path)
      }
      if (flat === null) return null
      const out: Extent[] = []
      for (let i = 0; i < flat.length; i += 2) out.push({ offset: flat[i], length: flat[i + 1] })
      return out
    })
  }

  read(buf: Uint8Array, offset: number): Promise<number> {
    return this.ops.run('read', this.path, () => this.b.read(this.fd, buf, offset, !this.cached).catch((err) => Promise.reject(nativeIoError(err, 'pread', this.path))))
  }

  async close(): Promise<void> {
    if (this.ops.closed) return
    await this.ops.drain()
    await this.b.close(this.fd, !this.direct && !this.cached, 0, 0).catch((err) => Promise.reject(nativeIoError(err, 'close', this.path)))
  }
}

class PosixWriteHandle implements WriteHandle {
  private readonly ops = new Operations()
  // O_DIRECT writes the tail padded to 4 KiB; the padding is cut at close unless truncate()
  // set the size since.
  private logicalEnd = 0
  private paddedEnd = 0

  constructor(
    private readonly b: PosixBinding,
    readonly path: EnginePath,
    private readonly fd: number,
    private readonly direct: boolean,
    private readonly sparse: boolean,
    private readonly finalSizeBytes: number | undefined,
    private readonly uncached: boolean,
  ) {}

  write(data: Uint8Array, offset: number): Promise<void> {
    return this.ops.run('write', this.path, async () => {
      let padded: number
      try {
        padded = await this.b.write(this.fd, data, offset, this.sparse, offset + data.byteLength === this.finalSizeBytes, this.uncached)
      } catch (err) {
        throw nativeIoError(err, 'pwrite', this.path)
      }
      if (padded > this.paddedEnd) {
        this.paddedEnd = padded
        this.logicalEnd = offset + data.byteLength
      }
    })
  }

  truncate(sizeBytes: number): Promise<void> {
    return this.ops.run('truncate', this.path, async () => {
      try {
        await this.b.truncate(this.fd, sizeBytes)
      } catch (err) {
        throw nativeIoError(err, 'ftruncate', this.path)
      }
      this.paddedEnd = 0
    })
  }

  async finish(attributes: Partial<FileAttributes> = {}): Promise<void> {
    const a = nativeAttributes(attributes)
    // The padding of an O_DIRECT tail goes before the times are set: cutting it at close would
    // stamp the file with the time of the cut. A padded write ended the file, so its end is the
    // file's size.
    if (this.paddedEnd > 0 && a.any) await this.truncate(this.logicalEnd)
    if (a.any) {
      try {
        await this.ops.run('finish', this.path, () => this.b.setAttributes(this.fd, a.mode, a.uid, a.gid, a.times))
      } catch (err) {
        await this.close().catch(() => {})
        throw nativeIoError(err, 'fchmod/fchown/futimens', this.path)
      }
    }
    await this.close()
  }

  async close(): Promise<void> {
    if (this.ops.closed) return
    await this.ops.drain()
    await this.b.close(this.fd, !this.direct, this.logicalEnd, this.paddedEnd).catch((err) => Promise.reject(nativeIoError(err, 'close', this.path)))
  }
}

/**
 * Attributes as the native calls take them: -1 for a mode or owner to keep (an owner needs both
 * uid and gid), times as [atime s, ns, mtime s, ns] or null to keep (both are needed); `any`
 * when there is something to set.
 */
function nativeAttributes(attributes: Partial<FileAttributes>): { mode: number; uid: number; gid: number; times: [number, number, number, number] | null; any: boolean } {
  const { mode, uid, gid, atimeNs, mtimeNs } = attributes
  const owner = uid !== undefined && gid !== undefined
  const times = atimeNs !== undefined && mtimeNs !== undefined ? ([...splitNs(atimeNs), ...splitNs(mtimeNs)] as [number, number, number, number]) : null
  return {
    mode: mode === undefined ? -1 : mode & 0o7777,
    uid: owner ? uid : -1,
    gid: owner ? gid : -1,
    times,
    any: mode !== undefined || owner || times !== null,
  }
}

/** Nanoseconds since the epoch → [seconds, nanoseconds 0..999,999,999], also before 1970. */
function splitNs(ns: bigint): [number, number] {
  let s = ns / 1_000_000_000n
  let r = ns % 1_000_000_000n
  if (r < 0n) {
    r += 1_000_000_000n
    s -= 1n
  }
  return [Number(s), Number(r)]
}
