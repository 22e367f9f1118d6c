// One read or write of a whole file through an IoEngine, as a benchmark runs it: in a process
// of its own (engine-io.cjs) under GNU time, so that each measurement has its own CPU and peak RSS.
import path from 'node:path'
import { startTimed, tail } from './timed-command'
import type { TimedResult } from './timed-command'

const ENGINE_SCRIPT = path.join(__dirname, 'engine-io.cjs')

/** What engine-io.cjs is asked to do. */
export interface EngineJob {
  /** Registered engine name: 'node-fs', 'posix', ... */
  engine: string
  /** Plugin modules to load besides the built-ins (absolute paths or package names). */
  plugins: string[]
  op: 'read' | 'write'
  path: string
  sizeBytes: number
  blockBytes: number
  direct: boolean
  /** Reads or writes in flight at once on the one handle. */
  queueDepth: number
}

/** What engine-io.cjs prints. */
interface EngineReport {
  seconds: number
  bytes: number
  cpuUserSeconds: number
  cpuSystemSeconds: number
  /** The descriptors the engine held on the file while its I/O was in flight. */
  descriptors: { count: number; direct: number } | null
}

export interface EngineIoRun {
  /** The whole process (Node's start-up and loading the plugins included), from GNU time. */
  timed: TimedResult
  /** The I/O alone, from inside; null when the run failed. */
  io: EngineReport | null
  error: string | null
}

export async function runEngineIo(job: EngineJob, env: NodeJS.ProcessEnv = {}): Promise<EngineIoRun> {
  const timed = await startTimed(process.execPath, [ENGINE_SCRIPT, JSON.stringify(job)], { env: { ...process.env, ...env } }).done
  if (timed.exitCode !== 0) {
    return { timed, io: null, error: timed.timedOut ? `did not finish in time and was killed: ${tail(timed.stderr)}` : `exit ${timed.exitCode}: ${tail(timed.stderr, 6)}` }
  }
  const io = JSON.parse(timed.stdout) as EngineReport
  if (io.bytes !== job.sizeBytes) return { timed, io: null, error: `moved ${io.bytes} bytes of ${job.sizeBytes}` }
  return { timed, io, error: null }
}
