// Types of the raw native module (native/addon.cc) and its loader. The module is built by
// `npm run build:native`; when it is missing or cannot load, the engine reports why.
import path from 'node:path'

export interface OpenResult {
  fd: number
  size: number
  /** Bytes allocated on disk (st_blocks × 512). */
  allocated: number
  /** Whether O_DIRECT is in effect (it was asked for and the file system took it). */
  direct: boolean
  /**
   * A file opened for reading that was mostly in the page cache already (cachestat, Linux 6.5):
   * it is read through the cache even when O_DIRECT was asked for, and its pages are kept.
   */
  cached: boolean
}

export interface NativeStats {
  /** Aligned buffers not yet freed, in this process. */
  alignedBuffers: number
  alignedBytes: number
  /** Descriptors opened by the engine and not yet closed, in this process. */
  openFiles: number
  /** Operations of this thread's engine whose completion JavaScript has not seen. */
  inFlight: number
  /** Files placeFile made unnamed (O_TMPFILE) and linked, in this process. */
  unnamedPlacements: number
}

/** Numbers per entry in listDirectory's `meta`, and where each is. */
export const LIST_FIELDS = 14
export const LIST_FIELD = {
  nameStart: 0,
  nameLength: 1,
  /** errno of the lstat, or of a symlink's readlink (its mode then says symlink); 0 if none. */
  errno: 2,
  mode: 3,
  uid: 4,
  gid: 5,
  size: 6,
  allocated: 7,
  atimeSec: 8,
  atimeNsec: 9,
  mtimeSec: 10,
  mtimeNsec: 11,
  linkStart: 12,
  linkLength: 13,
} as const

export const OPEN_WRITE = 1
export const OPEN_CREATE = 2
export const OPEN_DIRECT = 4

/** Native errors carry errno (negative, as Node's) and the failing syscall. */
export interface NativeError extends Error {
  errno: number
  syscall: string
}

export interface PosixBinding {
  readonly alignment: number
  allocate(sizeBytes: number): ArrayBuffer
  /** Detaches and frees an aligned buffer (after the I/O in flight on it). False if not ours. */
  release(buffer: ArrayBuffer): boolean
  open(path: Buffer | string, flags: number, perms: number, preallocBytes: number): Promise<OpenResult>
  /** Bytes read, fewer only at end of file. dropBehind (default true): buffered reads drop the pages they pass. */
  read(fd: number, buf: Uint8Array, offset: number, dropBehind?: boolean): Promise<number>
  /**
   * skipZero: leave a hole for an all-zero block. mayPad: this write ends the file, so O_DIRECT
   * may pad its unaligned tail (anywhere else an unaligned length turns O_DIRECT off for the
   * descriptor). Resolves with the padded end of file when the tail was padded, else 0.
   * uncached: a buffered write goes uncached (RWF_DONTCACHE) where the file system takes it.
   */
  write(fd: number, data: Uint8Array, offset: number, skipZero: boolean, mayPad: boolean, uncached: boolean): Promise<number>
  truncate(fd: number, sizeBytes: number): Promise<number>
  fsync(fd: number): Promise<number>
  /** [offset, length, ...] of data extents, or null when the file system cannot tell. */
  extents(fd: number, sizeBytes: number): Promise<Float64Array | null>
  /** mode/uid/gid -1 = keep; times [atimeSec, atimeNsec, mtimeSec, mtimeNsec] or null = keep. */
  setAttributes(fd: number, mode: number, uid: number, gid: number, times: [number, number, number, number] | null): Promise<number>
  close(fd: number, dropCache: boolean, logicalEnd: number, paddedEnd: number): Promise<number>
  /**
   * Each call opens, reads from offset 0 into buf and closes, buffered; its promise settles with
   * the bytes read, fewer only at end of file. The calls run in turn as one job.
   */
  /**
   * A directory's entries, but . and .., in byte order of their names, with what lstat tells of
   * each and a symlink's target: the names and targets one after another in `names`, and
   * LIST_FIELDS numbers per entry in `meta` (see LIST_FIELD). Rejects when the directory cannot
   * be read; an entry lstat or readlink failed on has its errno. noFollow: a symlink at path is
   * refused (ENOTDIR, as O_DIRECTORY | O_NOFOLLOW gives), not followed.
   */
  listDirectory(path: Buffer | string, noFollow?: boolean): Promise<{ names: Buffer; meta: Float64Array }>
  /** 1 when buffered writes to new files in dir go uncached (RWF_DONTCACHE), else 0; asked of an unnamed file there. */
  writesUncached(dir: Buffer | string): Promise<number>
  readWholeMany(calls: ReadWholeCall[]): Promise<number>[]
  /** Each call renames from to to (rename(2)); one promise per call. */
  renameMany(calls: Array<[Buffer | string, Buffer | string]>): Promise<number>[]
  /**
   * Each call creates path exclusively (O_EXCL | O_NOFOLLOW) with perms, writes data at offset 0
   * (skipZero: not if all zero), extends it to size, applies owner, mode and times as
   * setAttributes does, and closes it; a failure after the create removes the file. With a
   * final name, the file is put there whole or not at all (IoEngine.placeFile): made unnamed
   * there (O_TMPFILE) and linked, or where that cannot be, created at path and renamed over
   * final. The calls run in turn as one job.
   */
  createWholeMany(calls: CreateWholeCall[]): Promise<number>[]
  stats(): NativeStats
}

export type ReadWholeCall = [path: Buffer | string, buf: Uint8Array]
export type CreateWholeCall = [path: Buffer | string, data: Uint8Array, perms: number, size: number, skipZero: boolean, mode: number, uid: number, gid: number, times: [number, number, number, number] | null, final?: Buffer | string]

export type BindingLoad = { ok: true; binding: PosixBinding } | { ok: false; reason: string }

let loaded: BindingLoad | undefined

/** Loads the native module once per thread; never throws. */
export function loadBinding(): BindingLoad {
  if (loaded) return loaded
  if (process.platform !== 'linux') {
    loaded = { ok: false, reason: `the posix engine is built for Linux, not ${process.platform}` }
    return loaded
  }
  try {
    const nodeGypBuild = require('node-gyp-build') as (dir: string) => unknown
    loaded = { ok: true, binding: nodeGypBuild(path.join(__dirname, '..')) as PosixBinding }
  } catch (err) {
    const first = ((err as Error)?.message ?? String(err)).split('\n')[0]
    loaded = { ok: false, reason: `its native module did not load (${first}); run 'npm run build' to build it` }
  }
  return loaded
}
