// Which code a benchmark measured: the commit, and the files under packages/ that differed
// from it (benchmarks are often run on work in progress). Read-only git commands only.
import { execFileSync } from 'node:child_process'
import path from 'node:path'

const REPO_DIR = path.resolve(__dirname, '..', '..')

export interface SourceState {
  commit: string | null
  /** `git status --porcelain` lines under packages/, e.g. " M packages/core/src/transfer/copy.ts". */
  uncommittedUnderPackages: string[]
}

export function sourceState(): SourceState {
  // GIT_OPTIONAL_LOCKS=0: status must not refresh the index, which is a write.
  const git = (...args: string[]) =>
    execFileSync('git', args, { cwd: REPO_DIR, encoding: 'utf8', env: { ...process.env, GIT_OPTIONAL_LOCKS: '0' }, stdio: ['ignore', 'pipe', 'ignore'] })
  try {
    return {
      commit: git('rev-parse', 'HEAD').trim(),
      uncommittedUnderPackages: git('status', '--porcelain', '--', 'packages').split('\n').filter((l) => l.trim()),
    }
  } catch {
    return { commit: null, uncommittedUnderPackages: [] }
  }
}

/** One line for a RESULTS.md section. */
export function sourceLine(s: SourceState): string {
  if (s.commit === null) return '- Code: not a git checkout'
  const dirty = s.uncommittedUnderPackages.length
  return `- Code: commit ${s.commit.slice(0, 7)}${dirty ? ` plus ${dirty} uncommitted change${dirty === 1 ? '' : 's'} under packages/ (listed in the JSON)` : ''}`
}
