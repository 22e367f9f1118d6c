// What a benchmark figure depends on besides the code: the CPU and its crypto instructions,
// the core count, Node and its OpenSSL, and how busy the machine was while measuring.
import fs from 'node:fs'
import os from 'node:os'
import { ticksPerSecond } from './proc'

export interface MachineInfo {
  cpuModel: string
  /** x86 family/model/stepping: virtual machines often name the CPU only by brand ("AMD EPYC"). */
  cpuId: string | null
  /** The CPU features the measured primitives use when present (AES-NI, VAES, AVX-512, SHA-NI, ARMv8 crypto). */
  cpuFlags: string[]
  /** CPUs this process may run on, as `nproc` counts them. */
  nproc: number
  os: string
  node: string
  /** The OpenSSL that Node's crypto is built on. */
  nodeOpenssl: string
}

const INTERESTING_FLAGS = ['aes', 'vaes', 'pclmulqdq', 'vpclmulqdq', 'avx2', 'avx512f', 'sha_ni', 'pmull', 'sha2']

export function describeMachine(): MachineInfo {
  const cpuinfo = readOrNull('/proc/cpuinfo') ?? ''
  const field = (name: string) => cpuinfo.match(new RegExp(`^${name}\\s*:\\s*(.*)$`, 'm'))?.[1].trim()
  const flags = new Set((field('flags') ?? field('Features') ?? '').split(/\s+/))
  return {
    cpuModel: field('model name') ?? os.cpus()[0]?.model ?? 'unknown',
    cpuId: field('cpu family') === undefined ? null : `family ${field('cpu family')}, model ${field('model')}, stepping ${field('stepping')}`,
    cpuFlags: INTERESTING_FLAGS.filter((f) => flags.has(f)),
    nproc: os.availableParallelism(),
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    nodeOpenssl: process.versions.openssl,
  }
}

/** 1, 5 and 15 minute load averages, rounded as `uptime` shows them. */
export function loadAverage(): [number, number, number] {
  const [a, b, c] = os.loadavg().map((x) => Math.round(x * 100) / 100)
  return [a, b, c]
}

/** Aggregate CPU time counters from /proc/stat, in clock ticks. */
export interface CpuTimes {
  total: number
  steal: number
  /** Ticks some CPU spent running anything: user, nice, system, irq, softirq. */
  busy: number
}

export function readCpuTimes(): CpuTimes | null {
  const line = readOrNull('/proc/stat')?.split('\n', 1)[0]
  if (!line?.startsWith('cpu ')) return null
  // user nice system idle iowait irq softirq steal; guest time is already counted in user.
  const ticks = line.trim().split(/\s+/).slice(1, 9).map(Number)
  const [user, nice, system, , , irq, softirq] = ticks
  return { total: ticks.reduce((a, b) => a + b, 0), steal: ticks[7] ?? 0, busy: user + nice + system + irq + softirq }
}

/**
 * Share of CPU time the hypervisor gave to other guests between two readings: on a shared
 * virtual machine this is the clearest sign that figures are low because of neighbours.
 */
export function stealPercent(start: CpuTimes | null, end: CpuTimes | null): number | null {
  if (!start || !end || end.total <= start.total) return null
  return Math.round(((end.steal - start.steal) / (end.total - start.total)) * 1000) / 10
}

const TMPFS_MAGIC = 0x01021994
const EXT4_MAGIC = 0xef53

/** The file system `dir` is on, by name for the two the suites use (statfs(2) f_type). */
export function fileSystemName(dir: string): string {
  const type = fs.statfsSync(dir).type
  return type === TMPFS_MAGIC ? 'tmpfs' : type === EXT4_MAGIC ? 'ext4' : `fs type 0x${type.toString(16)}`
}

function readOrNull(file: string): string | null {
  try {
    return fs.readFileSync(file, 'utf8')
  } catch {
    return null
  }
}

/** How busy the machine was while a suite ran: load averages at both ends and CPU steal between. */
export interface RunConditions {
  date: string
  durationSeconds: number
  loadAverage: { start: number[]; end: number[] }
  cpuStealPercent: number | null
}

/** Notes the time, load and CPU counters now; finish() reads them again. */
export function startRun(): { startedAt: Date; finish(): RunConditions } {
  const startedAt = new Date()
  const load = loadAverage()
  const cpu = readCpuTimes()
  return {
    startedAt,
    finish: () => ({
      date: startedAt.toISOString(),
      durationSeconds: (Date.now() - startedAt.getTime()) / 1000,
      loadAverage: { start: load, end: loadAverage() },
      cpuStealPercent: stealPercent(cpu, readCpuTimes()),
    }),
  }
}

/** The "Machine" line of a RESULTS.md section. */
export function machineLine(machine: MachineInfo): string {
  const cpu = [machine.cpuModel, machine.cpuId, machine.cpuFlags.length ? `flags ${machine.cpuFlags.join(' ')}` : null].filter((x) => x).join(', ')
  return `- Machine: ${cpu}, ${machine.nproc} cores (nproc), ${machine.os}`
}

/** The "Load average" line of a RESULTS.md section. */
export function loadLine(c: Pick<RunConditions, 'loadAverage' | 'cpuStealPercent'>): string {
  return (
    `- Load average (1/5/15 min): ${c.loadAverage.start.join(' ')} at start, ${c.loadAverage.end.join(' ')} at end; ` +
    `CPU steal during the run: ${c.cpuStealPercent === null ? 'unknown' : `${c.cpuStealPercent}%`}`
  )
}

/** CPU seconds the whole machine spent busy between two readings, all processes together. */
export function busySeconds(start: CpuTimes | null, end: CpuTimes | null): number | null {
  if (!start || !end) return null
  return (end.busy - start.busy) / ticksPerSecond()
}

export interface QuietWait {
  /** Beyond the one second every check takes. */
  waitedSeconds: number
  /** Share of all CPUs busy in the last second watched. */
  busyPercent: number | null
}

/** Share of all CPUs that counts as a quiet machine in waitForQuiet(). */
export const QUIET_BUSY_PERCENT = 15

/**
 * Waits for a second in which the machine's CPUs were at most `maxBusyPercent` busy (other
 * people's work on a shared machine), giving up after `maxWaitMs`: a figure then measures
 * escp, not a neighbour's test run. What was waited and found is reported with the figure.
 */
export async function waitForQuiet(maxWaitMs: number, maxBusyPercent = QUIET_BUSY_PERCENT): Promise<QuietWait> {
  const start = Date.now()
  for (;;) {
    const a = readCpuTimes()
    await new Promise((resolve) => setTimeout(resolve, 1000))
    const b = readCpuTimes()
    const busyPercent = a && b && b.total > a.total ? Math.round(((b.busy - a.busy) / (b.total - a.total)) * 1000) / 10 : null
    const waitedSeconds = Math.max(0, Math.round((Date.now() - start) / 100) / 10 - 1)
    if (busyPercent === null || busyPercent <= maxBusyPercent || Date.now() - start >= maxWaitMs) return { waitedSeconds, busyPercent }
  }
}
