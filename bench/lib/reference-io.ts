// The reference tools for file I/O: fio and dd, each run under GNU time, each reporting the
// I/O phase as the tool itself timed it (fio's job runtime, dd's "copied, N s"), so that a
// tool's start-up (fio: about 0.25 s here) is not counted as I/O.
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import { promisify } from 'node:util'
import { runTimed, tail } from './timed-command'
import type { TimedResult } from './timed-command'

const execFileP = promisify(execFile)

export interface FileIoJob {
  op: 'read' | 'write'
  path: string
  sizeBytes: number
  blockBytes: number
  direct: boolean
}

export interface FioSettings {
  /** fio's ioengine: psync (one pread/pwrite at a time), libaio or io_uring (asynchronous, direct only). */
  ioengine: 'psync' | 'libaio' | 'io_uring'
  iodepth: number
}

export interface ReferenceRun {
  timed: TimedResult
  /** The I/O phase as the tool timed it; null when the run failed. */
  seconds: number | null
  /** User + system CPU of the I/O phase; null when the run failed. */
  cpuSeconds: number | null
  error: string | null
}

/** `fio --version`, or null when fio is not installed. */
export async function fioVersion(): Promise<string | null> {
  try {
    return (await execFileP('fio', ['--version'])).stdout.trim()
  } catch {
    return null
  }
}

export async function ddVersion(): Promise<string | null> {
  try {
    return (await execFileP('dd', ['--version'])).stdout.split('\n')[0].trim()
  } catch {
    return null
  }
}

/** fio's job file syntax takes ':' as a separator of file names. */
function fioFileName(file: string): string {
  return file.replace(/:/g, '\\:')
}

/**
 * One sequential pass over the file. Writes go to a new file: fio would preallocate it with
 * fallocate() first and leave that out of its runtime, so preallocation is turned off; the
 * runtime then ends with the fsync (end_fsync). Reads start with fio's own cache invalidation.
 */
export async function runFio(job: FileIoJob, fio: FioSettings, outputJson: string): Promise<ReferenceRun> {
  const args = [
    '--name=escp-bench',
    `--filename=${fioFileName(job.path)}`,
    `--rw=${job.op}`,
    `--bs=${job.blockBytes}`,
    `--size=${job.sizeBytes}`,
    `--ioengine=${fio.ioengine}`,
    `--iodepth=${fio.iodepth}`,
    `--direct=${job.direct ? 1 : 0}`,
    ...(job.op === 'write' ? ['--end_fsync=1', '--fallocate=none'] : ['--invalidate=1']),
    '--output-format=json',
    `--output=${outputJson}`,
  ]
  const timed = await runTimed('fio', args)
  const failed = (error: string): ReferenceRun => ({ timed, seconds: null, cpuSeconds: null, error })
  if (timed.exitCode !== 0) return failed(`${timed.timedOut ? 'timed out' : `exit ${timed.exitCode}`}: ${tail(timed.stderr + timed.stdout)}`)
  let out: { jobs: ({ error: number; job_runtime: number; usr_cpu: number; sys_cpu: number } & Record<'read' | 'write', { io_bytes: number; runtime: number }>)[] }
  try {
    out = JSON.parse(fs.readFileSync(outputJson, 'utf8'))
  } catch (err) {
    return failed(`cannot read fio's JSON output: ${(err as Error).message}`)
  } finally {
    fs.rmSync(outputJson, { force: true })
  }
  const j = out.jobs[0]
  if (j.error !== 0) return failed(`fio reported error ${j.error}: ${tail(timed.stderr)}`)
  if (j[job.op].io_bytes !== job.sizeBytes) return failed(`fio moved ${j[job.op].io_bytes} bytes of ${job.sizeBytes}`)
  // runtime is in milliseconds; usr_cpu and sys_cpu are percentages of the job's runtime.
  const seconds = j[job.op].runtime / 1000
  return { timed, seconds, cpuSeconds: ((j.usr_cpu + j.sys_cpu) / 100) * (j.job_runtime / 1000), error: null }
}

/** `dd` with `bs` the block size; writes read /dev/zero and end with conv=fsync, which dd's time includes. */
export async function runDd(job: FileIoJob): Promise<ReferenceRun> {
  const bs = job.blockBytes % 2 ** 20 === 0 ? `${job.blockBytes / 2 ** 20}M` : `${job.blockBytes / 1024}K`
  const args =
    job.op === 'read'
      ? [`if=${job.path}`, 'of=/dev/null', `bs=${bs}`, ...(job.direct ? ['iflag=direct'] : [])]
      : ['if=/dev/zero', `of=${job.path}`, `bs=${bs}`, `count=${Math.ceil(job.sizeBytes / job.blockBytes)}`, 'conv=fsync', ...(job.direct ? ['oflag=direct'] : [])]
  // LC_ALL=C: dd's summary line in a form the pattern below reads.
  const timed = await runTimed('dd', args, { env: { ...process.env, LC_ALL: 'C' } })
  const failed = (error: string): ReferenceRun => ({ timed, seconds: null, cpuSeconds: null, error })
  if (timed.exitCode !== 0) return failed(`${timed.timedOut ? 'timed out' : `exit ${timed.exitCode}`}: ${tail(timed.stderr)}`)
  const m = timed.stderr.match(/^(\d+) bytes\b.*copied, ([\d.]+(?:e[-+]?\d+)?) s,/m)
  if (!m) return failed(`no summary line from dd: ${tail(timed.stderr)}`)
  if (Number(m[1]) !== job.sizeBytes) return failed(`dd moved ${m[1]} bytes of ${job.sizeBytes}`)
  // dd's own start-up is a millisecond: its process's CPU is the I/O phase's.
  return { timed, seconds: Number(m[2]), cpuSeconds: timed.userSeconds + timed.systemSeconds, error: null }
}
