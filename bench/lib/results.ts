// Where suites keep what they measured: the full data as JSON in bench/results/ (committed, so
// figures can be compared across commits and machines), and the latest table of each suite in
// its own section of bench/RESULTS.md.
import fs from 'node:fs'
import path from 'node:path'

const BENCH_DIR = path.resolve(__dirname, '..')
const REPO_DIR = path.resolve(BENCH_DIR, '..')
export const RESULTS_DIR = path.join(BENCH_DIR, 'results')
export const RESULTS_MD = path.join(BENCH_DIR, 'RESULTS.md')

const RESULTS_MD_INTRO = `# Benchmark results

The latest figures of each \`npm run bench -- <suite>\`. Each suite rewrites only its own section,
between its \`<!-- <suite>:start -->\` and \`<!-- <suite>:end -->\` markers; the full data of every
run is in \`bench/results/<suite>-<timestamp>.json\`.
`

/** `file` relative to the repository when inside it, so committed results name no local paths. */
export function repoPath(file: string): string {
  const rel = path.relative(REPO_DIR, file)
  return rel.startsWith('..') || path.isAbsolute(rel) ? file : rel
}

/**
 * ISO 8601 basic format (20261125T154012Z): file names with ':' cannot be checked out on
 * Windows, and these files are committed.
 */
export function fileTimestamp(date: Date): string {
  return date.toISOString().replace(/\.\d+Z$/, 'Z').replace(/[-:]/g, '')
}

/** Writes `data` to bench/results/<suite>-<timestamp>.json; returns the path relative to the repository. */
export function writeResultsJson(suite: string, startedAt: Date, data: unknown): string {
  fs.mkdirSync(RESULTS_DIR, { recursive: true })
  const file = path.join(RESULTS_DIR, `${suite}-${fileTimestamp(startedAt)}.json`)
  // Written whole or not at all: an interrupted run leaves a *.tmp (ignored by git), never half a result.
  const tmp = `${file}.tmp`
  fs.writeFileSync(tmp, `${JSON.stringify(data, null, 2)}\n`)
  fs.renameSync(tmp, file)
  return repoPath(file)
}

/**
 * What every suite does with its report: the JSON under bench/results/, its section rendered
 * (with the JSON's name) and printed, then written into bench/RESULTS.md.
 */
export function publishResults<R>(suite: string, startedAt: Date, report: R, render: (report: R, jsonFile: string) => string): void {
  const jsonFile = writeResultsJson(suite, startedAt, report)
  const section = render(report, jsonFile)
  console.log(`\n${section}\n`)
  const mdFile = updateResultsSection(suite, section)
  console.log(`wrote ${jsonFile} and the ${suite} section of ${mdFile}`)
}

/** Replaces the suite's section of bench/RESULTS.md with `body`, or appends the section. */
export function updateResultsSection(suite: string, body: string): string {
  const start = `<!-- ${suite}:start -->`
  const end = `<!-- ${suite}:end -->`
  const current = fs.existsSync(RESULTS_MD) ? fs.readFileSync(RESULTS_MD, 'utf8') : RESULTS_MD_INTRO
  const section = `${start}\n${body.trim()}\n${end}`
  const i = current.indexOf(start)
  const j = current.indexOf(end)
  let next: string
  if (i === -1 && j === -1) {
    next = `${current.trimEnd()}\n\n${section}\n`
  } else if (i !== -1 && j > i && current.indexOf(start, i + 1) === -1 && current.indexOf(end, j + 1) === -1) {
    next = current.slice(0, i) + section + current.slice(j + end.length)
  } else {
    // Rewriting around broken markers could delete another suite's figures or hand-written text.
    throw new Error(`${repoPath(RESULTS_MD)} has unmatched or repeated '${start}' / '${end}' markers; fix them by hand and run again`)
  }
  fs.writeFileSync(RESULTS_MD, next)
  return repoPath(RESULTS_MD)
}
