// An emulated WAN between two network namespaces for tests and benchmarks: A (198.18.0.1) and
// B (198.18.1.1), addresses from the benchmarking range 198.18.0.0/15 (RFC 2544), each namespace
// with one link, `wan0`, to the other. netem on a veth pair is the first choice; on a kernel
// without netem (this machine's) our own forwarder (bench/wan/forwarder.c, built here with gcc
// on first use) joins a TUN device in each namespace and delays, drops and rate-limits.
// Everything created here is removed by stop(), which also ends every process left inside
// the namespaces, and runs on every path of the callers (after hooks, the suite's teardown).
import { execFile, execFileSync, spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)

const WAN_DIR = __dirname
export const FORWARDER_SOURCE = path.join(WAN_DIR, 'forwarder.c')
export const FORWARDER_BINARY = path.join(WAN_DIR, 'build', 'forwarder')
const BUILD_SCRIPT = path.join(WAN_DIR, 'build.sh')

export const ADDRESS_A = '198.18.0.1'
export const ADDRESS_B = '198.18.1.1'
const DEV = 'wan0'

export interface WanOptions {
  /** Namespace names; they must not exist yet (or be empty leftovers of an earlier run). */
  nsA: string
  nsB: string
  /** One-way delay in each direction: RTT = 2 × delayMs. */
  delayMs: number
  /** Drop probability per packet in each direction, a fraction (0.0001 = 0.01%). */
  loss: number
  /** Bottleneck rate per direction in bit/s; 0 or absent: none. */
  rateBps?: number
  mtu?: number
  /** 'auto': netem when the kernel has it, else the forwarder; 'forwarder': always ours. */
  emulator?: 'auto' | 'forwarder'
}

/** One direction's counters, as the forwarder prints them. */
export interface DirectionStats {
  in: number
  out: number
  outBytes: number
  /** Dropped at random (the configured loss). */
  lost: number
  /** Dropped because the bottleneck's buffer was full (rate limit only). */
  droppedBuffer: number
  /** Dropped because the forwarder's ring was full: should stay 0. */
  droppedFull: number
  writeErrors: number
  maxQueued: number
  capacity: number
}

export interface ForwarderStats {
  aToB: DirectionStats
  bToA: DirectionStats
}

export interface Wan {
  emulator: 'netem' | 'forwarder'
  /** Why netem was not used (null when it was, or when the forwarder was asked for). */
  netemUnavailable: string | null
  nsA: string
  nsB: string
  addressA: string
  addressB: string
  options: Required<Omit<WanOptions, 'emulator'>>
  /** The forwarder's counters so far; null with netem. */
  stats(): Promise<ForwarderStats | null>
  /** Packets the kernel dropped at `wan0`'s own queue in namespace `ns` (tx_dropped). */
  txDropped(ns: string): number
  /** Ends every process in both namespaces and deletes them; the forwarder's last counters. Safe to call twice. */
  stop(): Promise<ForwarderStats | null>
}

/** Null when this process can create network namespaces with `ip netns`; else why not. */
export function netnsUnavailable(): string | null {
  if (process.platform !== 'linux') return 'network namespaces are Linux only'
  if (process.getuid?.() !== 0) return 'creating network namespaces needs root'
  try {
    execFileSync('ip', ['netns', 'list'], { stdio: 'pipe' })
  } catch (err) {
    return `'ip netns' is unavailable (apt-get install iproute2): ${(err as Error).message.split('\n')[0]}`
  }
  return null
}

/** Null when `tc ... netem` works on this kernel; else tc's error. Checked in a namespace of its own. */
export function netemUnavailable(): string | null {
  const ns = `escp-netem-check-${process.pid}`
  try {
    execFileSync('ip', ['netns', 'add', ns], { stdio: 'pipe' })
  } catch (err) {
    return `cannot create a namespace to try netem in: ${errorText(err)}`
  }
  try {
    execFileSync('tc', ['-n', ns, 'qdisc', 'add', 'dev', 'lo', 'root', 'netem', 'delay', '1ms'], { stdio: 'pipe' })
    return null
  } catch (err) {
    return `tc qdisc add ... netem failed: ${errorText(err).replace(/\.$/, '')}`
  } finally {
    execFileSync('ip', ['netns', 'del', ns], { stdio: 'pipe' })
  }
}

/** Builds the forwarder when it is missing or older than its source; null when done, else why it failed. */
export function buildForwarder(): string | null {
  try {
    const bin = fs.statSync(FORWARDER_BINARY, { throwIfNoEntry: false })
    if (bin && bin.mtimeMs >= fs.statSync(FORWARDER_SOURCE).mtimeMs) return null
    execFileSync('sh', [BUILD_SCRIPT], { stdio: 'pipe' })
    return null
  } catch (err) {
    return `cannot build ${path.relative(process.cwd(), FORWARDER_SOURCE)} (needs gcc): ${errorText(err)}`
  }
}

/** Creates both namespaces and the link between them. Call stop() on every path. */
export async function startWan(options: WanOptions): Promise<Wan> {
  const opts = { rateBps: 0, mtu: 1500, ...options }
  const { nsA, nsB } = opts
  const netemWhyNot = opts.emulator === 'forwarder' ? null : netemUnavailable()
  const emulator = opts.emulator === 'forwarder' || netemWhyNot !== null ? 'forwarder' : 'netem'
  let forwarder: ChildProcess | null = null
  let stdoutLines: string[] = []
  let lineWaiters: ((line: string) => void)[] = []
  let lastStats: ForwarderStats | null = null
  let stopped = false

  const stop = async (): Promise<ForwarderStats | null> => {
    if (stopped) return lastStats
    stopped = true
    if (forwarder && forwarder.exitCode === null && forwarder.signalCode === null) {
      const exited = new Promise((resolve) => forwarder?.once('exit', resolve))
      forwarder.kill('SIGTERM')
      await Promise.race([exited, sleep(2000)])
      if (forwarder.exitCode === null && forwarder.signalCode === null) forwarder.kill('SIGKILL')
      const last = stdoutLines.filter((l) => l.startsWith('{')).at(-1)
      if (last) lastStats = JSON.parse(last) as ForwarderStats
    }
    for (const ns of [nsA, nsB]) await removeNamespace(ns)
    return lastStats
  }

  try {
    for (const ns of [nsA, nsB]) {
      await clearLeftover(ns)
      await ip(['netns', 'add', ns])
      await ip(['-n', ns, 'link', 'set', 'lo', 'up'])
      // IPv4 only: no router solicitations or MLD reports on the link, whose counters the test reads.
      await run('ip', ['netns', 'exec', ns, 'sysctl', '-q', '-w', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1'])
    }
    if (emulator === 'netem') {
      await ip(['link', 'add', DEV, 'netns', nsA, 'type', 'veth', 'peer', 'name', DEV, 'netns', nsB])
      for (const ns of [nsA, nsB]) {
        await ip(['-n', ns, 'link', 'set', DEV, 'mtu', String(opts.mtu), 'up'])
        // limit: packets netem holds; a 1 Gbit/s × 20 ms product is about 1700 full-size packets.
        const netem = ['delay', `${opts.delayMs}ms`, 'loss', `${opts.loss * 100}%`, ...(opts.rateBps ? ['rate', `${opts.rateBps}bit`] : []), 'limit', '20000']
        await run('tc', ['-n', ns, 'qdisc', 'add', 'dev', DEV, 'root', 'netem', ...netem])
      }
    } else {
      const why = buildForwarder()
      if (why) throw new Error(why)
      const args = ['--ns-a', nsA, '--ns-b', nsB, '--dev', DEV, '--mtu', String(opts.mtu), '--delay', String(opts.delayMs), '--loss', String(opts.loss)]
      if (opts.rateBps) args.push('--rate', String(opts.rateBps))
      const child = spawn(FORWARDER_BINARY, args, { stdio: ['ignore', 'pipe', 'pipe'] })
      forwarder = child
      let stderr = ''
      let partial = ''
      child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s))
      child.stdout.setEncoding('utf8').on('data', (s: string) => {
        const lines = (partial + s).split('\n')
        partial = lines.pop() ?? ''
        for (const line of lines) {
          const waiter = lineWaiters.shift()
          if (waiter) waiter(line)
          else stdoutLines.push(line)
        }
      })
      const ready = await Promise.race([
        new Promise<string>((resolve) => lineWaiters.push(resolve)),
        new Promise<string>((resolve) => child.once('exit', (code, signal) => resolve(`exited (${code ?? signal})`))),
        sleep(5000).then(() => 'did not report ready within 5 s'),
      ])
      if (ready !== 'ready') throw new Error(`the WAN forwarder ${ready}: ${stderr.trim()}`)
      stdoutLines = []
      lineWaiters = []
    }
    const ends: [string, string, string][] = [
      [nsA, ADDRESS_A, '198.18.1.0/24'],
      [nsB, ADDRESS_B, '198.18.0.0/24'],
    ]
    for (const [ns, address, peer] of ends) {
      await ip(['-n', ns, 'addr', 'add', `${address}/24`, 'dev', DEV])
      await ip(['-n', ns, 'route', 'add', peer, 'dev', DEV])
    }
  } catch (err) {
    await stop()
    throw err
  }

  const stats = async (): Promise<ForwarderStats | null> => {
    const child = forwarder
    if (!child || child.exitCode !== null) return null
    const line = new Promise<string>((resolve) => lineWaiters.push(resolve))
    child.kill('SIGUSR1')
    const got = await Promise.race([line, sleep(2000).then(() => null)])
    if (got === null) throw new Error('the WAN forwarder did not answer SIGUSR1 within 2 s')
    return JSON.parse(got) as ForwarderStats
  }

  return {
    emulator,
    netemUnavailable: netemWhyNot,
    nsA,
    nsB,
    addressA: ADDRESS_A,
    addressB: ADDRESS_B,
    options: { nsA, nsB, delayMs: opts.delayMs, loss: opts.loss, rateBps: opts.rateBps, mtu: opts.mtu },
    stats,
    txDropped: (ns) => Number(execFileSync('ip', ['netns', 'exec', ns, 'cat', `/sys/class/net/${DEV}/statistics/tx_dropped`], { encoding: 'utf8' }).trim()),
    stop,
  }
}

/** The counters between two readings. */
export function statsDelta(before: ForwarderStats | null, after: ForwarderStats | null): ForwarderStats | null {
  if (!before || !after) return null
  const dir = (a: DirectionStats, b: DirectionStats): DirectionStats => ({
    in: b.in - a.in,
    out: b.out - a.out,
    outBytes: b.outBytes - a.outBytes,
    lost: b.lost - a.lost,
    droppedBuffer: b.droppedBuffer - a.droppedBuffer,
    droppedFull: b.droppedFull - a.droppedFull,
    writeErrors: b.writeErrors - a.writeErrors,
    maxQueued: b.maxQueued,
    capacity: b.capacity,
  })
  return { aToB: dir(before.aToB, after.aToB), bToA: dir(before.bToA, after.bToA) }
}

/** Runs `argv` inside namespace `ns`. */
export function inNamespace(ns: string, argv: readonly string[]): [string, string[]] {
  return ['ip', ['netns', 'exec', ns, ...argv]]
}

/** Sets the TCP congestion control of namespace `ns` (new namespaces inherit the host's). */
export async function setCongestionControl(ns: string, cc: string): Promise<void> {
  await run('ip', ['netns', 'exec', ns, 'sysctl', '-q', '-w', `net.ipv4.tcp_congestion_control=${cc}`])
}

/** The congestion controls this kernel offers now. */
export function availableCongestionControls(): string[] {
  return fs.readFileSync('/proc/sys/net/ipv4/tcp_available_congestion_control', 'utf8').trim().split(/\s+/)
}

const ALLOWED_CC = '/proc/sys/net/ipv4/tcp_allowed_congestion_control'

/**
 * A namespace other than the host's may only make an algorithm its default when the host lists it
 * in tcp_allowed_congestion_control (else sysctl fails with EPERM); that list usually holds only
 * the host's default and reno. Adds `ccs` to it; returns the original list to restore, or null
 * when nothing had to change.
 */
export function allowCongestionControls(ccs: readonly string[]): string | null {
  const original = fs.readFileSync(ALLOWED_CC, 'utf8').trim()
  const list = original.split(/\s+/).filter(Boolean)
  const missing = ccs.filter((cc) => !list.includes(cc))
  if (!missing.length) return null
  fs.writeFileSync(ALLOWED_CC, [...list, ...missing].join(' '))
  return original
}

/** Puts back what allowCongestionControls() returned. */
export function restoreAllowedCongestionControls(original: string): void {
  fs.writeFileSync(ALLOWED_CC, original)
}

async function ip(args: string[]): Promise<void> {
  try {
    await run('ip', args)
  } catch (err) {
    throw new Error(`ip ${args.join(' ')}: ${errorText(err)}`)
  }
}

function namespaceExists(ns: string): boolean {
  return fs.existsSync(path.join('/run/netns', ns))
}

async function pidsIn(ns: string): Promise<number[]> {
  try {
    const { stdout } = await run('ip', ['netns', 'pids', ns])
    return stdout.split(/\s+/).filter(Boolean).map(Number)
  } catch {
    return []
  }
}

/** A namespace of ours left by a run that was killed: removed if nothing runs in it, else an error. */
async function clearLeftover(ns: string): Promise<void> {
  if (!namespaceExists(ns)) return
  const pids = await pidsIn(ns)
  if (pids.length) throw new Error(`network namespace ${ns} exists and processes ${pids.join(' ')} run in it: another run is using it`)
  await ip(['netns', 'del', ns])
}

/** Ends every process inside `ns` (ours: the forwarder, sshd, escp servers), then deletes it. */
async function removeNamespace(ns: string): Promise<void> {
  if (!namespaceExists(ns)) return
  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    const pids = await pidsIn(ns)
    if (!pids.length) break
    for (const pid of pids) {
      try {
        process.kill(pid, signal)
      } catch {
        // Gone already.
      }
    }
    const end = Date.now() + 2000
    while (Date.now() < end && (await pidsIn(ns)).length) await sleep(50)
  }
  await ip(['netns', 'del', ns])
}

function errorText(err: unknown): string {
  const e = err as Error & { stderr?: string | Buffer }
  return (e.stderr?.toString() ?? '').trim() || e.message
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
