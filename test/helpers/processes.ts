// Processes as /proc shows them, for tests that stop what a command started.
import fs from 'node:fs'

/** The processes whose parent is `pid`. */
export function childrenOf(pid: number): number[] {
  const out: number[] = []
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8')
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) out.push(Number(d))
    } catch {
      // It exited while we looked.
    }
  }
  return out
}
