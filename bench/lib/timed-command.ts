// Runs a command under GNU time (`/usr/bin/time -f '%e %U %S %M'`): wall seconds, the user
// and system CPU of the command and of every descendant it waited for, and the peak RSS of
// the largest single process among them. Each figure covers the processes the command
// started; a server it only talks to (an sshd) is counted separately by its caller.
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

export const GNU_TIME = '/usr/bin/time'
const FORMAT = '%e %U %S %M'
const OUTPUT_TAIL_BYTES = 64 * 1024

export interface TimedResult {
  command: string
  /** null when the command was killed for running past its timeout. */
  exitCode: number | null
  timedOut: boolean
  wallSeconds: number
  userSeconds: number
  systemSeconds: number
  /** ru_maxrss: the largest resident set of one process of the tree, not their sum. */
  maxRssKiB: number
  stdout: string
  /** The last 64 KiB. */
  stderr: string
}

export interface TimedProcess {
  /** Pid of GNU time itself; the command is its child. */
  pid: number
  done: Promise<TimedResult>
  kill(): void
}

export interface TimedOptions {
  env?: NodeJS.ProcessEnv
  cwd?: string
  /** Killed (with its whole process group) after this long; default 10 minutes. */
  timeoutMs?: number
}

let counter = 0
const running = new Set<TimedProcess>()

/** Kills every command still running (a suite interrupted by a signal must leave none behind). */
export function killRunning(): void {
  for (const p of running) p.kill()
}

/** Starts `file args...` under GNU time; `done` resolves when it exits, whatever its status. */
export function startTimed(file: string, args: readonly string[], options: TimedOptions = {}): TimedProcess {
  if (!fs.existsSync(GNU_TIME)) throw new Error(`${GNU_TIME} is missing; install GNU time (apt-get install time)`)
  const timeFile = path.join(os.tmpdir(), `escp-bench-time-${process.pid}-${++counter}.txt`)
  const command = [file, ...args].map(quoteArg).join(' ')
  // A process group of its own, so that a hang can be ended with everything it started.
  const child = spawn(GNU_TIME, ['-f', FORMAT, '-o', timeFile, file, ...args], {
    cwd: options.cwd,
    env: options.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8')
  child.stderr.setEncoding('utf8')
  child.stdout.on('data', (s: string) => (stdout += s))
  child.stderr.on('data', (s: string) => (stderr = (stderr + s).slice(-OUTPUT_TAIL_BYTES)))
  let timedOut = false
  let closed = false
  const kill = () => {
    if (closed) return
    try {
      process.kill(-(child.pid as number), 'SIGKILL')
    } catch {
      // Already gone.
    }
  }
  const timer = setTimeout(() => {
    timedOut = true
    kill()
  }, options.timeoutMs ?? 600_000)
  const done = new Promise<TimedResult>((resolve, reject) => {
    child.once('error', (err) => {
      clearTimeout(timer)
      running.delete(handle)
      reject(new Error(`could not run ${command}: ${err.message}`))
    })
    child.once('close', (code) => {
      closed = true
      clearTimeout(timer)
      running.delete(handle)
      let text = ''
      try {
        text = fs.readFileSync(timeFile, 'utf8')
        fs.rmSync(timeFile, { force: true })
      } catch {
        // GNU time was killed before it wrote anything.
      }
      // On failure GNU time first writes "Command exited with non-zero status N".
      const last = text.trim().split('\n').at(-1) ?? ''
      const [wall, user, sys, rss] = last.split(' ').map(Number)
      const measured = [wall, user, sys, rss].every((x) => Number.isFinite(x))
      resolve({
        command,
        exitCode: timedOut ? null : code,
        timedOut,
        wallSeconds: measured ? wall : NaN,
        userSeconds: measured ? user : NaN,
        systemSeconds: measured ? sys : NaN,
        maxRssKiB: measured ? rss : NaN,
        stdout,
        stderr,
      })
    })
  })
  const handle: TimedProcess = { pid: child.pid as number, done, kill }
  running.add(handle)
  return handle
}

export function runTimed(file: string, args: readonly string[], options: TimedOptions = {}): Promise<TimedResult> {
  return startTimed(file, args, options).done
}

/** A command line as a shell would need it, for reports. */
export function quoteArg(a: string): string {
  return /^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`
}

/** The last lines of a command's error output, for a report. */
export function tail(text: string, lines = 3): string {
  return text.trim().split('\n').slice(-lines).join(' | ')
}
