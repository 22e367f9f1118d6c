// What a benchmark figure depends on besides the code: the CPU and its crypto instructions,
// the core count, Node and its OpenSSL, and how busy the machine was while measuring.
import fs from 'node:fs'
import os from 'node:os'

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
}

export function readCpuTimes(): CpuTimes | null {
  const line = readOrNull('/proc/stat')?.split('\n', 1)[0]
  if (!line?.startsWith('cpu ')) return null
  // user nice system idle iowait irq softirq steal; guest time is already counted in user.
  const ticks = line.trim().split(/\s+/).slice(1, 9).map(Number)
  return { total: ticks.reduce((a, b) => a + b, 0), steal: ticks[7] ?? 0 }
}

/**
 * Share of CPU time the hypervisor gave to other guests between two readings: on a shared
 * virtual machine this is the clearest sign that figures are low because of neighbours.
 */
export function stealPercent(start: CpuTimes | null, end: CpuTimes | null): number | null {
  if (!start || !end || end.total <= start.total) return null
  return Math.round(((end.steal - start.steal) / (end.total - start.total)) * 1000) / 10
}

function readOrNull(file: string): string | null {
  try {
    return fs.readFileSync(file, 'utf8')
  } catch {
    return null
  }
}
