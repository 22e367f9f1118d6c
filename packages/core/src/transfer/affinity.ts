// CPU affinity for the stream workers (EScp's cpumask): each worker thread pins itself before
// it loads its engine, so the engine's own I/O threads, started later by that thread, inherit
// the set. Node has no affinity call; util-linux's taskset sets it for one thread id.
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import { escpError } from '../errors'
import { CPUMASK_ENV } from '../env-names'

export { CPUMASK_ENV }

/**
 * CPUs from a list ("0-3,8,10-11") or a hex mask ("0x0f": bit i is CPU i; unlike EScp's
 * cpumask, whose bytes are read in reverse). Every CPU must exist here.
 */
export function parseCpuSet(text: string, cpuCount: number = os.cpus().length): number[] {
  const t = text.trim()
  const cpus = new Set<number>()
  const bad = (why: string) => escpError('ESCP_ERR_BAD_ARGUMENT', `CPU set '${text}' ${why} (give a list such as 0-3,8 or a hex mask such as 0x0f)`)
  if (/^0x[0-9a-f]+$/i.test(t)) {
    const mask = BigInt(t)
    for (let i = 0; i < t.length * 4; i++) if ((mask >> BigInt(i)) & 1n) cpus.add(i)
  } else {
    for (const part of t.split(',')) {
      const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim())
      if (!m) throw bad(`has '${part}'`)
      const from = Number(m[1])
      const to = m[2] === undefined ? from : Number(m[2])
      if (to < from) throw bad(`has the range ${part} backwards`)
      for (let c = from; c <= to && c < 65536; c++) cpus.add(c)
    }
  }
  if (cpus.size === 0) throw bad('names no CPU')
  const missing = [...cpus].filter((c) => c >= cpuCount)
  if (missing.length > 0) throw bad(`names CPU ${missing[0]}, but this host has CPUs 0-${cpuCount - 1}`)
  return [...cpus].sort((a, b) => a - b)
}

/** Restricts the calling thread (a worker thread, or the main thread) to `cpus`. */
export async function pinCurrentThread(cpus: readonly number[]): Promise<void> {
  let tid: string
  try {
    // "PID/task/TID"
    tid = fs.readlinkSync('/proc/thread-self').split('/').pop() as string
  } catch (err) {
    throw escpError('ESCP_ERR_BAD_ARGUMENT', `CPU affinity needs Linux's /proc (${(err as Error).message})`)
  }
  await new Promise<void>((resolve, reject) => {
    execFile('taskset', ['-p', '-c', cpus.join(','), tid], (err, _out, stderr) => {
      if (!err) resolve()
      else reject(escpError('ESCP_ERR_BAD_ARGUMENT', `cannot pin a stream worker to CPUs ${cpus.join(',')}: ${(stderr || err.message).trim()}`))
    })
  })
}
