// Types of the raw native module (native/addon.cc over src/escp_shm.c) and its loader. The
// module is built by `npm run build:native`; when it is missing or cannot load, the engine and
// the block API report why.
import path from 'node:path'

export interface RegionHandle {
  /** This thread's handle of its own mapping. */
  id: number
  blockSizeBytes: number
  slotCount: number
  streamCount: number
}

/** Stream states, as escp_shm.h numbers them. */
export const STREAM_OPEN = 1
export const STREAM_ENDED = 2
export const STREAM_ABORTED = 3
export const STREAM_DONE = 4

export interface StreamState {
  state: number
  producerPid: number
  consumerPid: number
  /** -1 while a stream of unknown size is open. */
  sizeBytes: number
  committedBytes: number
  releasedBytes: number
  name: string
  error: string
}

export interface TakenBlock {
  slot: number
  offset: number
  length: number
}

/**
 * Native errors carry `errno` (negative, as Node's) and `syscall`, or one of the module's own
 * codes: ESHMABORTED (the message says why), ESHMBADREGION, ECANCELED.
 */
export interface NativeError extends Error {
  code?: string
  errno?: number
  syscall: string
}

/** Waits without a deadline (still ended by a dead peer or by closing the region). */
export const FOREVER = -1

export interface ShmBinding {
  open(name: string, create: false): Promise<RegionHandle>
  open(name: string, create: true, blockSizeBytes: number, slotCount: number, streamCount: number): Promise<RegionHandle>
  /** Cancels this handle's waits; `remove` also removes the region's name from /dev/shm. */
  close(region: number, remove: boolean): void
  /** The slot area of this handle's mapping: slot i is at i × blockSizeBytes. */
  slots(region: number): ArrayBuffer
  info(region: number): { slotsInUse: number }
  /** sizeBytes -1: known only at the end. */
  begin(region: number, name: string, sizeBytes: number): number
  claim(region: number, stream: number, timeoutMs: number): Promise<number>
  commit(region: number, stream: number, slot: number, offset: number, length: number): void
  unclaim(region: number, stream: number, slot: number): void
  end(region: number, stream: number): void
  abort(region: number, stream: number, message: string): void
  waitDone(region: number, stream: number, timeoutMs: number): Promise<void>
  attach(region: number, name: string, timeoutMs: number): Promise<number>
  state(region: number, stream: number): StreamState
  /** The stream of that name not yet done, without attaching to it; -1 when there is none. */
  find(region: number, name: string): number
  /** null past the end of an ended stream. */
  take(region: number, stream: number, offset: number, timeoutMs: number): Promise<TakenBlock | null>
  release(region: number, stream: number, slot: number): void
  /** Takes the block at `offset`, copies it into `buf` and releases it: its length (0 past the end). */
  readInto(region: number, stream: number, offset: number, timeoutMs: number, buf: Uint8Array): Promise<number>
  /**
   * Claims a slot (waiting for one), copies `buf` into it and commits it at `offset`;
   * endWhenComplete: the write that completes a stream of known size also ends it.
   */
  writeFrom(region: number, stream: number, offset: number, timeoutMs: number, buf: Uint8Array, endWhenComplete?: boolean): Promise<void>
  stats(): { openRegions: number; inFlight: number }
}

export type BindingLoad = { ok: true; binding: ShmBinding } | { ok: false; reason: string }

let loaded: BindingLoad | undefined

/** Loads the native module once per thread; never throws. */
export function loadBinding(): BindingLoad {
  if (loaded) return loaded
  if (process.platform !== 'linux') {
    loaded = { ok: false, reason: `shared-memory regions use Linux futexes; this is ${process.platform}` }
    return loaded
  }
  try {
    const nodeGypBuild = require('node-gyp-build') as (dir: string) => unknown
    loaded = { ok: true, binding: nodeGypBuild(path.join(__dirname, '..')) as ShmBinding }
  } catch (err) {
    const first = ((err as Error)?.message ?? String(err)).split('\n')[0]
    loaded = { ok: false, reason: `its native module did not load (${first}); run 'npm run build' to build it` }
  }
  return loaded
}
