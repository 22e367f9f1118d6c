// Storage I/O. One engine instance serves one worker thread; it owns the memory it reads into
// and writes from, so an engine can hand out aligned or shared buffers without copies.
import type { InjectionToken } from 'tsyringe'
import type { Availability } from './availability'

/**
 * A file name as the engine takes it: bytes (Buffer) keep names that are not UTF-8 intact;
 * strings are encoded as UTF-8. A name may lead through a directory the transfer holds open
 * (`/proc/self/fd/N/name`): valid in this process, as any path, for as long as the call needs it.
 */
export type EnginePath = string | Buffer

/** A path for messages: raw bytes shown as UTF-8 with replacement characters. */
export function displayPath(p: EnginePath | Uint8Array): string {
  return typeof p === 'string' ? p : Buffer.from(p.buffer, p.byteOffset, p.byteLength).toString('utf8')
}

/** A run of data in a file; anything between extents is a hole that reads as zeros. */
export interface Extent {
  offset: number
  length: number
}

/** Times in nanoseconds since the epoch, as fs.stat with bigint reports them. */
export interface FileAttributes {
  mode: number
  uid: number
  gid: number
  atimeNs: bigint
  mtimeNs: bigint
}

export interface OpenReadOptions {
  /** Ask for O_DIRECT where the engine and file system support it. */
  direct?: boolean
}

export interface OpenWriteOptions {
  /**
   * true (default): create the file, or truncate it. false: open an existing file without
   * truncating, as each worker of a transfer does for the blocks it writes.
   */
  create?: boolean
  /** Final size when known: engines may preallocate, and O_DIRECT may pad the last block. */
  sizeBytes?: number
  /** false: do not preallocate even with sizeBytes (the file will have holes). Default true. */
  preallocate?: boolean
  /** Permission bits to create the file with (before any umask). */
  mode?: number
  direct?: boolean
  /** Skip writing blocks that are entirely zero, leaving holes. */
  sparse?: boolean
}

/** What ReadHandle.readOrEnd found at an offset of a source whose size is known only at its end. */
export interface ReadOrEnd {
  /** Bytes read: all of the buffer, fewer for the source's last block, 0 at or past its end. */
  bytesRead: number
  /** The source's final size when the read found its end (bytesRead < the buffer's length), else null. */
  endBytes: number | null
}

/** How `IoEngine.createFile` makes a small file in one call. */
export interface CreateFileOptions {
  /** Permission bits the file is created with (less the umask). */
  mode: number
  /** The file's size; larger than the data only when `sparse` left an all-zero block out. */
  sizeBytes: number
  /** Skip writing the data if it is all zeros, leaving a hole. */
  sparse?: boolean
  /** Applied before the file is closed (those given). */
  attributes?: Partial<FileAttributes>
}

export interface ReadHandle {
  readonly path: EnginePath
  /** null: the size is known only when the source ends (a stream still being produced). */
  readonly sizeBytes: number | null
  /** Data extents in offset order, or null when the engine cannot tell holes from data. */
  extents(): Promise<Extent[] | null>
  /** Reads up to buf.length bytes at `offset`; returns bytes read, fewer only at end of file. */
  read(buf: Uint8Array, offset: number): Promise<number>
  /**
   * For a source whose size is known only at its end (an engine that can name one implements
   * it): waits until the block of buf.length bytes at `offset` is available or the source has
   * ended before that block's end, and says which. A read that comes back short or empty is the
   * end, and `endBytes` is then the source's final size, the same for every read that finds the
   * end. A source that fails (its producer died) rejects, as read does.
   */
  readOrEnd?(buf: Uint8Array, offset: number): Promise<ReadOrEnd>
  close(): Promise<void>
}

export interface WriteHandle {
  readonly path: EnginePath
  /** Writes all of `data` at `offset`. */
  write(data: Uint8Array, offset: number): Promise<void>
  /** Sets the exact size (after holes at the end, or a padded tail). */
  truncate(sizeBytes: number): Promise<void>
  /** Applies attributes (those given), flushes what the engine must, and closes. */
  finish(attributes?: Partial<FileAttributes>): Promise<void>
  /** Closes without finishing; the caller removes the file. */
  close(): Promise<void>
}

export interface BufferPool {
  readonly bufferSizeBytes: number
  acquire(): Uint8Array
  release(buf: Uint8Array): void
  /** Frees the pool's memory now rather than at garbage collection (buffers still lent: when given back). */
  dispose?(): void
}

/**
 * A source that an engine names itself rather than the file system holding it (a stream of a
 * shared-memory region): sent as one regular file.
 */
export interface EngineSource {
  /** The name it is sent under (a single path component). */
  name: string
  /**
   * null: known only when the source ends; the engine's ReadHandle then implements readOrEnd,
   * and the file is sent only to a peer whose protocol carries such files (1.2).
   */
  sizeBytes: number | null
  mode: number
  mtimeNs: bigint
}

/** One entry of a directory, as lstat tells of it (IoEngine.listDirectory). */
export interface DirectoryEntry {
  /** Its name in the directory (one path component). */
  name: Buffer
  /** 'other': a fifo, socket or device. */
  type: 'file' | 'directory' | 'symlink' | 'other'
  /** Permission bits (st_mode & 0o7777). */
  mode: number
  uid: number
  gid: number
  sizeBytes: number
  /** Space it occupies on disk (st_blocks × 512). */
  allocatedBytes: number
  atimeNs: bigint
  mtimeNs: bigint
  /** A symlink's target. */
  linkTarget?: Buffer
  /** Why it could not be looked up (lstat, or readlink of a symlink); the others are still listed. */
  error?: Error
}

export interface ListDirectoryOptions {
  /**
   * Refuse a symlink at the directory's own path (ENOTDIR) rather than follow it: for a directory a
   * walk found by its listing, which a symlink may have taken the place of since.
   */
  noFollow?: boolean
}

export interface IoEngine {
  readonly name: string
  /**
   * True for an engine whose writes create no files: dummy throws the bytes away, shm hands them
   * to a consumer. A receiver then creates no files, directories or links, and opens each file
   * for writing by its name as sent: in its workers to write the blocks (with `sizeBytes` unset
   * for a file whose size is known only at its end), then once more, with the final size, when
   * the whole file has been received and verified, to finish() that handle; or, when the file
   * failed, to close() it unfinished, having written nothing on it.
   */
  readonly discards?: boolean
  /**
   * Where the engine writes with O_DIRECT when asked (OpenWriteOptions.direct): the alignment
   * its I/O memory needs, which the buffers of its pool have. A block in other memory is copied
   * into an aligned buffer first, so a receiver's stream worker decrypts full blocks into pool
   * buffers for it. Absent: the engine does no O_DIRECT, or takes any memory as it is.
   */
  readonly directAlignment?: number
  /**
   * Optional: whether buffered writes (OpenWriteOptions.direct false) to new files in `dir` go
   * uncached: written back as they are made and dropped from the page cache once clean
   * (RWF_DONTCACHE, Linux 6.14), so that they neither fill the cache nor wait for a flush.
   * Where they do, a receiver asked to bypass the page cache writes buffered rather than with
   * O_DIRECT. Rejects where `dir` cannot be written to.
   */
  writesUncached?(dir: EnginePath): Promise<boolean>
  available(): Availability
  /**
   * For a sender: the source named by `source` when this engine provides it, else null (the
   * source is then a path in the file system). Rejects with the reason a source that is this
   * engine's cannot be sent.
   */
  describeSource?(source: string): Promise<EngineSource | null>
  /**
   * Optional, for the sender's walk over a tree: a directory's entries (not . and ..) in byte
   * order of their names, each with what lstat tells of it, in one call. Rejects with the
   * directory's error when it cannot be read. Where a tree of small files costs more in calls
   * than in I/O, one call per directory instead of one per entry is most of its walk. The
   * entries may be made as they are iterated (a directory of millions of entries then holds
   * only its compact listing, not an object per entry), and are iterated once.
   */
  listDirectory?(dir: EnginePath, options?: ListDirectoryOptions): Promise<Iterable<DirectoryEntry>>
  /** Buffers of `bufferSizeBytes` suited to this engine (aligned for O_DIRECT where needed). */
  createBufferPool(bufferSizeBytes: number, count: number): BufferPool
  openRead(path: EnginePath, options?: OpenReadOptions): Promise<ReadHandle>
  openWrite(path: EnginePath, options?: OpenWriteOptions): Promise<WriteHandle>
  /**
   * Optional, for small files: reads a whole file of at most `buf.length` bytes (open, read from
   * offset 0, close) in one call, through the page cache. Resolves with the bytes read, fewer
   * only at end of file. Where a file costs more in calls than in I/O, one call instead of three
   * is most of its cost.
   */
  readFile?(path: EnginePath, buf: Uint8Array): Promise<number>
  /**
   * Optional, for many small files: rename(2) of `from` to `to` (a file or symlink at `to` is
   * replaced, never followed; a directory there is an error), in a batch with the other calls
   * of this turn where the engine batches them.
   */
  rename?(from: EnginePath, to: EnginePath): Promise<void>
  /**
   * Optional, for small files: creates `path`, which must not exist (not even as a symlink),
   * writes `data` at offset 0, sets the size and attributes and closes it, in one call. A
   * failure leaves nothing at `path` that this call made.
   */
  createFile?(path: EnginePath, data: Uint8Array, options: CreateFileOptions): Promise<void>
  /**
   * Optional, for small files: makes a file of `data` as createFile does and puts it at `final`
   * in one call, whole or not at all: nothing shows at `final` before the file is complete with
   * its attributes. A file or symlink at `final` is replaced (the symlink itself, never what it
   * points to); a directory there is an error (EISDIR). `temp`, a name in the same directory
   * that nothing has, may be used on the way. A failure leaves nothing this call made at
   * `temp` or at `final`.
   */
  placeFile?(final: EnginePath, temp: EnginePath, data: Uint8Array, options: CreateFileOptions): Promise<void>
}

export const IO_ENGINE: InjectionToken<IoEngine> = Symbol.for('escp:io-engine')

/** The engine name that picks the best engine available on each side. */
export const AUTO_ENGINE = 'auto'
/** What 'auto' tries, in order: the native engine where it loads, else the portable one. */
export const AUTO_ENGINE_PREFERENCE: readonly string[] = ['posix', 'node-fs']

/** Largest file offset escp's engines take: offsets are JS numbers, exact to 2^53-1. */
export const MAX_FILE_SIZE_BYTES = Number.MAX_SAFE_INTEGER
