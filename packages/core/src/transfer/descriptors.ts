// Descriptors are a budget that every open file, directory, socket and worker thread of the
// process draws on (ulimit -n). A transfer takes a share of it for each of its uses that could
// otherwise open hundreds at once.
import fs from 'node:fs'

/** The process's soft limit on open descriptors (ulimit -n), as /proc tells it; 1024 where it cannot. */
const DESCRIPTOR_LIMIT = (() => {
  try {
    const line = fs.readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max open files'))
    const soft = Number(line?.split(/\s{2,}/)[1])
    return Number.isFinite(soft) ? soft : 1024
  } catch {
    return 1024
  }
})()

/**
 * A share of the descriptor limit for one use: `1 / fraction` of it, at most `cap`, at least 1,
 * so that a low `ulimit -n` slows a transfer down rather than failing its files with EMFILE.
 */
export function descriptorShare(fraction: number, cap: number): number {
  return Math.max(1, Math.min(cap, Math.floor(DESCRIPTOR_LIMIT / fraction)))
}
