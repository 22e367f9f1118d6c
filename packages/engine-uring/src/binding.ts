// Types of the raw native module (native/addon.cc) and its loader. The module is built by
// `npm run build:native`; when it is missing or cannot load, the engine reports why.
import path from 'node:path'
import type { NativeStats } from '@escp/engine-posix'

/** What the kernel said when asked for a ring: a failing call's errno, or a missing operation. */
export type ProbeResult =
  | { ok: true }
  | { ok: false; errno: number; syscall: string }
  | { ok: false; missing: string }
  | { ok: false; reason: string }

export interface UringStats extends NativeStats {
  /** Entries of this thread's ring (or of the ring it will create). */
  queueDepth: number
  /** Whether this thread has created its ring. */
  ring: boolean
  /** Aligned buffers of this thread registered with its ring (READ_FIXED / WRITE_FIXED). */
  registeredBuffers: number
  /** Descriptors registered with this thread's ring. */
  fixedFiles: number
  /** io_uring_enter calls that submitted, and the entries they carried: several per call is batching. */
  enterCalls: number
  entriesSubmitted: number
  /** Reads and writes that went through a registered buffer (READ_FIXED / WRITE_FIXED). */
  fixedTrips: number
  /** The most entries this thread's ring had in the kernel at once: never more than queueDepth. */
  peakInKernel: number
}

export interface UringNative {
  readonly alignment: number
  /** Sets up and closes a ring, to tell whether io_uring can run here. */
  probe(): ProbeResult
  /**
   * The queue depth of this thread's ring: as asked, unless the ring exists already.
   * maxTripBytes (a multiple of 4096, default 1 GiB) caps what one entry moves; tests make it
   * small so that the kernel completes an I/O in parts.
   */
  configure(queueDepth: number, maxTripBytes?: number): number
  /** Sets up this thread's ring now (else at first use); throws with errno and syscall. Returns its depth. */
  start(): number
  /** Aligned memory, registered with this thread's ring when there is room. */
  allocate(sizeBytes: number): ArrayBuffer
  release(buffer: ArrayBuffer): boolean
  /** The ring does I/O on fd from now on (after open); detach before close. */
  /** keepCache: buffered reads leave the pages they pass in the cache (a source found there). */
  attach(fd: number, direct: boolean, keepCache?: boolean): void
  detach(fd: number): void
  /** Queued until the next submit(). Bytes read, fewer only at end of file. */
  read(fd: number, buf: Uint8Array, offset: number): Promise<number>
  /** Queued until the next submit(). The padded end of file when O_DIRECT padded the tail, else 0. */
  write(fd: number, data: Uint8Array, offset: number, skipZero: boolean, mayPad: boolean, uncached: boolean): Promise<number>
  /** Hands what is queued to the kernel with one io_uring_enter; returns how many entries it took. */
  submit(): number
  stats(): Omit<UringStats, 'openFiles'>
}

export type NativeLoad = { ok: true; native: UringNative } | { ok: false; reason: string }

let loaded: NativeLoad | undefined

/** Loads the native module once per thread; never throws. */
export function loadNative(): NativeLoad {
  if (loaded) return loaded
  if (process.platform !== 'linux') {
    loaded = { ok: false, reason: `io_uring is Linux's; this is ${process.platform}` }
    return loaded
  }
  try {
    const nodeGypBuild = require('node-gyp-build') as (dir: string) => unknown
    loaded = { ok: true, native: nodeGypBuild(path.join(__dirname, '..')) as UringNative }
  } catch (err) {
    const first = ((err as Error)?.message ?? String(err)).split('\n')[0]
    loaded = { ok: false, reason: `its native module did not load (${first}); run 'npm run build' to build it` }
  }
  return loaded
}
