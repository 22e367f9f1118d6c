// CPU time of processes and threads from /proc: what a benchmark needs to say which process,
// and which thread in it, a transfer spent its CPU in, and to count the CPU of processes it
// did not start itself (an sshd's session processes).
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'

let clockTicks: number | undefined

/** Clock ticks per second, the unit of /proc's CPU times (`getconf CLK_TCK`, 100 almost everywhere). */
export function ticksPerSecond(): number {
  clockTicks ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100
  return clockTicks
}

/** The CPU fields of /proc/<pid>[/task/<tid>]/stat, in seconds. */
export interface ProcCpu {
  ppid: number
  userSeconds: number
  systemSeconds: number
  /** CPU of children this process has waited for (and of theirs, recursively). */
  childrenUserSeconds: number
  childrenSystemSeconds: number
}

export function readProcCpu(pid: number, tid?: number): ProcCpu | null {
  const text = readOrNull(tid === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${tid}/stat`)
  if (text === null) return null
  // The command name is in parentheses and may hold spaces or parentheses: split after the last ')'.
  // What follows starts at field 3 (state); utime, stime, cutime and cstime are fields 14-17.
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ')
  const hz = ticksPerSecond()
  return {
    ppid: Number(f[1]),
    userSeconds: Number(f[11]) / hz,
    systemSeconds: Number(f[12]) / hz,
    childrenUserSeconds: Number(f[13]) / hz,
    childrenSystemSeconds: Number(f[14]) / hz,
  }
}

/** Live children of `pid`, whichever of its threads started them. */
export function childrenOf(pid: number): number[] {
  const out: number[] = []
  for (const tid of listOrEmpty(`/proc/${pid}/task`)) {
    const text = readOrNull(`/proc/${pid}/task/${tid}/children`)
    if (text) out.push(...text.trim().split(/\s+/).filter((s) => s).map(Number))
  }
  return out
}

export function descendantsOf(pid: number): number[] {
  const out: number[] = []
  const queue = childrenOf(pid)
  while (queue.length > 0) {
    const p = queue.shift() as number
    out.push(p)
    queue.push(...childrenOf(p))
  }
  return out
}

/** Resolves once `pid` has no live children (they exited and were reaped), or after `timeoutMs`. */
export async function waitForNoChildren(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (childrenOf(pid).length === 0) return true
    if (Date.now() >= deadline) return false
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

/** True once something listens on 127.0.0.1:`port` (TCP), read from /proc/net/tcp without connecting. */
export function isListening(port: number): boolean {
  const want = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`
  const any = `00000000:${port.toString(16).toUpperCase().padStart(4, '0')}`
  // Columns: sl local_address rem_address st ...; state 0A is LISTEN.
  return (readOrNull('/proc/net/tcp') ?? '')
    .split('\n')
    .slice(1)
    .some((line) => {
      const cols = line.trim().split(/\s+/)
      return (cols[1] === want || cols[1] === any) && cols[3] === '0A'
    })
}

export async function waitForListening(port: number, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!isListening(port)) {
    if (Date.now() >= deadline) throw new Error(`${what} did not listen on 127.0.0.1:${port} within ${timeoutMs / 1000} s`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

/** One process of a sampled tree: its threads' CPU seconds, the main thread (tid = pid) first. */
export interface ProcessProfile {
  pid: number
  command: string
  /** User + system; the system part (kernel: sockets, page faults, file I/O) also on its own. */
  mainThreadSeconds: number
  mainThreadSystemSeconds: number
  otherThreadsSeconds: number
  otherThreadsSystemSeconds: number
  /** Every thread that used at least 10 ms, busiest first. */
  threads: { tid: number; main: boolean; seconds: number; userSeconds: number; systemSeconds: number }[]
}

/**
 * Samples the CPU time of every thread of a process tree while it runs, counted from when
 * the sampler started. A thread's last reading is kept, so CPU a thread used after the last
 * sample before it exited is missed: the sums come out a little below what `time` reports
 * for the same tree.
 */
export class ThreadSampler {
  private readonly seconds = new Map<string, { user: number; system: number }>()
  /** What threads that already ran when sampling started had used by then. */
  private readonly baseline = new Map<string, { user: number; system: number }>()
  private readonly commands = new Map<number, string>()
  private readonly timer: NodeJS.Timeout

  constructor(
    private readonly rootPid: number,
    intervalMs = 200,
  ) {
    this.sample()
    for (const [key, seconds] of this.seconds) this.baseline.set(key, seconds)
    // unref: a sampler left running after an error must not keep the process alive.
    this.timer = setInterval(() => this.sample(), intervalMs).unref()
  }

  /** Takes a last sample and returns the processes of the tree that used CPU, in the order first seen. */
  stop(): ProcessProfile[] {
    this.sample()
    clearInterval(this.timer)
    const profiles = [...this.commands].map(([pid, command]) => {
      const threads = [...this.seconds]
        .filter(([key]) => key.startsWith(`${pid}/`))
        .map(([key, now]) => {
          const tid = Number(key.slice(key.indexOf('/') + 1))
          const base = this.baseline.get(key) ?? { user: 0, system: 0 }
          const user = now.user - base.user
          const system = now.system - base.system
          return { tid, main: tid === pid, seconds: round2(user + system), userSeconds: round2(user), systemSeconds: round2(system) }
        })
      const main = threads.find((t) => t.main)
      const others = threads.filter((t) => !t.main)
      return {
        pid,
        command,
        mainThreadSeconds: main?.seconds ?? 0,
        mainThreadSystemSeconds: main?.systemSeconds ?? 0,
        otherThreadsSeconds: round2(others.reduce((s, t) => s + t.seconds, 0)),
        otherThreadsSystemSeconds: round2(others.reduce((s, t) => s + t.systemSeconds, 0)),
        threads: threads.filter((t) => t.seconds >= 0.01).sort((a, b) => b.seconds - a.seconds),
      }
    })
    return profiles.filter((p) => p.threads.length > 0)
  }

  private sample(): void {
    for (const pid of [this.rootPid, ...descendantsOf(this.rootPid)]) {
      // Read again each time: a child caught between fork and exec still shows its parent's
      // argv. A zombie's is empty: keep what it showed while alive.
      const argv = readOrNull(`/proc/${pid}/cmdline`)
      if (argv) this.commands.set(pid, argv.split('\0').filter((s) => s).join(' '))
      else if (!this.commands.has(pid)) continue
      for (const tid of listOrEmpty(`/proc/${pid}/task`)) {
        const cpu = readProcCpu(pid, Number(tid))
        if (cpu) this.seconds.set(`${pid}/${tid}`, { user: cpu.userSeconds, system: cpu.systemSeconds })
      }
    }
  }
}

function round2(x: number): number {
  return Math.round(x * 100) / 100
}

function readOrNull(file: string): string | null {
  try {
    return fs.readFileSync(file, 'utf8')
  } catch {
    return null
  }
}

function listOrEmpty(dir: string): string[] {
  try {
    return fs.readdirSync(dir)
  } catch {
    return []
  }
}
