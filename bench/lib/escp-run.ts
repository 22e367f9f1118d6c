// One escp copy() as a benchmark runs it: in a process of its own (escp-copy.cjs) under GNU
// time, with the CPU of every thread of the tree sampled from /proc while it runs.
import path from 'node:path'
import type { CopyRequest, TransferSummary } from '@escp/core'
import { BUNDLED_PLUGINS } from '@escp/cli'
import { ThreadSampler, ticksPerSecond } from './proc'
import type { ProcessProfile } from './proc'
import { GNU_TIME, startTimed, tail } from './timed-command'
import type { TimedResult } from './timed-command'

const COPY_SCRIPT = path.join(__dirname, 'escp-copy.cjs')
/** Far beyond any copy a suite makes: past it, the copy is taken to hang and is killed. */
const COPY_TIMEOUT_MS = 600_000

/** What escp-copy.cjs prints. */
interface CopyReport {
  wallSeconds: number
  callerCpuSeconds: { user: number; system: number }
  receiverCpuTicks: { user: number; system: number }
  summary: Omit<TransferSummary, 'failures' | 'warnings'> & {
    failures: { path: string; code: string; message: string }[]
    warnings: { path: string; severity: string; code: string; message: string }[]
  }
}

export interface EscpRun {
  /** The whole process tree, from GNU time (includes both Node start-ups). */
  timed: TimedResult
  /** The copy() call alone, from inside; null when it failed. */
  copy: {
    wallSeconds: number
    /** The calling process: the sender's main thread and its stream workers. */
    callerCpuSeconds: number
    /** The receiver child, spawned and waited for by copy(). */
    receiverCpuSeconds: number
    summary: CopyReport['summary']
  } | null
  /** Null when it worked; else what went wrong, as precisely as the run said. */
  error: string | null
  /** Per process of the tree: CPU of its main thread and of its other threads. */
  threads: (ProcessProfile & { role: string })[]
}

/**
 * The engine packages the escp command ships and loads: copy() in the benchmarks loads them too,
 * so that its 'auto' engine is the one users get from `escp a b`.
 */
export const SHIPPED_PLUGINS: readonly string[] = BUNDLED_PLUGINS

/** Runs copy(request) in a fresh Node process; `env` adds to the suite's environment. */
export async function runEscpCopy(request: Omit<CopyRequest, 'onProgress' | 'onIssue'>, env: NodeJS.ProcessEnv = {}): Promise<EscpRun> {
  const proc = startTimed(process.execPath, [COPY_SCRIPT, JSON.stringify(request)], { env: { ...process.env, ...env }, timeoutMs: COPY_TIMEOUT_MS })
  const sampler = new ThreadSampler(proc.pid)
  const timed = await proc.done
  const threads = sampler
    .stop()
    .filter((p) => !p.command.startsWith(GNU_TIME))
    .map((p) => ({ ...p, role: roleOf(p.command) }))
  let copy: EscpRun['copy'] = null
  let error: string | null = null
  if (timed.exitCode !== 0) {
    error = timed.timedOut ? `copy() did not finish within ${COPY_TIMEOUT_MS / 1000} s and was killed: ${tail(timed.stderr)}` : `exit ${timed.exitCode}: ${tail(timed.stderr, 6)}`
  } else {
    const report = JSON.parse(timed.stdout) as CopyReport
    const hz = ticksPerSecond()
    copy = {
      wallSeconds: report.wallSeconds,
      callerCpuSeconds: report.callerCpuSeconds.user + report.callerCpuSeconds.system,
      receiverCpuSeconds: (report.receiverCpuTicks.user + report.receiverCpuTicks.system) / hz,
      summary: report.summary,
    }
    if (!report.summary.ok) {
      const first = report.summary.failures[0]
      error = `copy() returned ok: false, ${report.summary.entriesOk} of ${report.summary.entries} entries ok${first ? `; first failure: ${first.path}: ${first.code}: ${first.message}` : ''}`
    }
  }
  return { timed, copy, error, threads }
}

function roleOf(command: string): string {
  if (command.includes('escp-copy.cjs')) return 'sender (copy() caller)'
  if (command.includes('server-main')) return 'receiver (child)'
  return command.slice(0, 60)
}
