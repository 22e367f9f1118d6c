// The uring engine: the posix engine's handling of files (open with O_DIRECT and its fallback,
// preallocation, extents, attributes, close, on that engine's I/O threads), with every read and
// write going through this thread's io_uring instead: queued during a turn of the event loop,
// submitted together, completed in batches.
import fs from 'node:fs'
import os from 'node:os'
import { debuglog, getSystemErrorName } from 'node:util'
import { escpError } from '@escp/core/plugin'
import type { BufferPool } from '@escp/core/plugin'
import { PosixEngine, loadBinding, nativeIoError } from '@escp/engine-posix'
import type { PosixBinding, PosixEngineOptions } from '@escp/engine-posix'
import { loadNative } from './binding'
import type { ProbeResult, UringNative, UringStats } from './binding'

const debug = debuglog('escp-uring')

/** Set to turn the engine off (tests of the fallback); an errno name, e.g. EPERM, acts as if io_uring_setup failed with it. */
export const URING_DISABLE_ENV = 'ESCP_URING_DISABLE'
export const DEFAULT_QUEUE_DEPTH = 64
export const MAX_QUEUE_DEPTH = 4096

export interface UringEngineOptions extends PosixEngineOptions {
  /** Entries of this thread's ring: at most this many reads and writes in the kernel at once; more wait their turn. */
  queueDepth?: number
}

export class UringEngine extends PosixEngine {
  override readonly name = 'uring'
  private readonly ring: UringNative | undefined

  constructor(options: UringEngineOptions = {}) {
    const load = loadUring(options.queueDepth ?? DEFAULT_QUEUE_DEPTH)
    super(load.ok ? { ok: true, binding: load.binding } : load, options)
    this.ring = load.ok ? load.ring : undefined
  }

  /** The pool's buffers are registered with this thread's ring, so the ring is set up with it. */
  override createBufferPool(bufferSizeBytes: number, count: number): BufferPool {
    const pool = super.createBufferPool(bufferSizeBytes, count)
    try {
      this.ring?.start()
    } catch (err) {
      throw nativeIoError(err, 'io_uring_setup', "this thread's io_uring")
    }
    return pool
  }

  /** Native counters (descriptors, aligned memory, this thread's ring), for tests that check nothing leaks. */
  override stats(): UringStats {
    return super.stats() as UringStats
  }
}

let probed: { ok: true } | { ok: false; reason: string } | undefined

type UringLoad = { ok: true; binding: PosixBinding; ring: UringNative } | { ok: false; reason: string }

function loadUring(queueDepth: number): UringLoad {
  if (!Number.isInteger(queueDepth) || queueDepth < 1 || queueDepth > MAX_QUEUE_DEPTH) {
    throw escpError('ESCP_ERR_BAD_ARGUMENT', `the uring queue depth must be a whole number from 1 to ${MAX_QUEUE_DEPTH}, not ${queueDepth}`)
  }
  const disabled = process.env[URING_DISABLE_ENV]
  const simulated = disabled !== undefined && disabled in os.constants.errno ? disabled : undefined
  if (disabled && disabled !== '0' && !simulated) {
    return { ok: false, reason: `io_uring is turned off by ${URING_DISABLE_ENV}=${disabled}` }
  }
  const posix = loadBinding()
  if (!posix.ok) return { ok: false, reason: `it opens and closes files through engine-posix, whose ${posix.reason.replace(/^its /, '')}` }
  const load = loadNative()
  if (!load.ok) return load
  // Once per thread: the probe sets up a ring and closes it.
  probed ??= availability(simulated ? simulatedFailure(simulated) : load.native.probe())
  if (!probed.ok) return probed
  const depth = load.native.configure(queueDepth)
  if (depth !== queueDepth) debug('this thread\'s ring has %d entries already; queue depth %d applies to rings made later', depth, queueDepth)
  return { ok: true, binding: ringBinding(posix.binding, load.native), ring: load.native }
}

function simulatedFailure(errnoName: string): ProbeResult {
  return { ok: false, errno: -os.constants.errno[errnoName as keyof typeof os.constants.errno], syscall: 'io_uring_setup' }
}

/** Availability from the probe, with a reason that tells the user what to do. */
function availability(probe: ProbeResult): { ok: true } | { ok: false; reason: string } {
  if (probe.ok) return probe
  if ('reason' in probe) return probe
  if ('missing' in probe) return { ok: false, reason: `this kernel's io_uring lacks ${probe.missing} (Linux 5.6 or later is needed)` }
  const code = getSystemErrorName(probe.errno)
  return { ok: false, reason: `${probe.syscall} failed with ${code}: ${setupFailure(code)}` }
}

function setupFailure(code: string): string {
  switch (code) {
    case 'ENOSYS':
      return 'this kernel has no io_uring (Linux 5.6 or later is needed)'
    case 'EPERM':
    case 'EACCES': {
      const sysctl = readSysctl('/proc/sys/kernel/io_uring_disabled')
      const why = sysctl !== undefined && sysctl !== '0' ? `kernel.io_uring_disabled is ${sysctl}` : "a seccomp profile (a container runtime's default, for one) blocks it"
      return `io_uring is not permitted here (${why}); use another engine, e.g. posix`
    }
    case 'ENOMEM':
      return 'not enough locked memory for a ring (kernels before 5.12 count rings against RLIMIT_MEMLOCK: raise ulimit -l)'
    default:
      return 'the kernel refused to set up a ring'
  }
}

function readSysctl(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8').trim()
  } catch {
    return undefined
  }
}

/**
 * The posix engine's native calls with reads, writes and buffers taken over by the ring. A
 * descriptor is attached to the ring after open and detached before close; reads and writes
 * queue, and one submit per turn of the event loop hands them all to the kernel.
 */
function ringBinding(posix: PosixBinding, ring: UringNative): PosixBinding {
  let submitPending = false
  const queued = (start: () => Promise<number>): Promise<number> => {
    let p: Promise<number>
    try {
      p = start()
    } catch (err) {
      return Promise.reject(err)
    }
    if (!submitPending) {
      submitPending = true
      setImmediate(() => {
        submitPending = false
        ring.submit()
      })
    }
    return p
  }
  return {
    alignment: ring.alignment,
    allocate: (sizeBytes) => ring.allocate(sizeBytes),
    release: (buffer) => ring.release(buffer),
    async open(path, flags, perms, preallocBytes) {
      const r = await posix.open(path, flags, perms, preallocBytes)
      try {
        ring.attach(r.fd, r.direct, r.cached)
      } catch (err) {
        await posix.close(r.fd, false, 0, 0).catch(() => {})
        throw err
      }
      return r
    },
    read: (fd, buf, offset) => queued(() => ring.read(fd, buf, offset)),
    write: (fd, data, offset, skipZero, mayPad, uncached) => queued(() => ring.write(fd, data, offset, skipZero, mayPad, uncached)),
    truncate: (fd, sizeBytes) => posix.truncate(fd, sizeBytes),
    fsync: (fd) => posix.fsync(fd),
    extents: (fd, sizeBytes) => posix.extents(fd, sizeBytes),
    setAttributes: (fd, mode, uid, gid, times) => posix.setAttributes(fd, mode, uid, gid, times),
    close(fd, dropCache, logicalEnd, paddedEnd) {
      ring.detach(fd)
      return posix.close(fd, dropCache, logicalEnd, paddedEnd)
    },
    // Whole small files and directory listings go to the posix engine's threads (in jobs of up
    // to 16): a ring gains nothing there.
    listDirectory: (path, noFollow) => posix.listDirectory(path, noFollow),
    readWholeMany: (calls) => posix.readWholeMany(calls),
    renameMany: (calls) => posix.renameMany(calls),
    createWholeMany: (calls) => posix.createWholeMany(calls),
    // Its writes go uncached where posix's do (RWF_DONTCACHE on the ring's writes).
    writesUncached: (dir) => posix.writesUncached(dir),
    stats(): UringStats {
      const files = posix.stats()
      const own = ring.stats()
      return { ...own, openFiles: files.openFiles, inFlight: files.inFlight + own.inFlight }
    },
  }
}
