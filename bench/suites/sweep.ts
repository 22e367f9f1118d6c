// Which settings suit this machine: escp in loopback mode (copy() through the library, as the
// transfer suite runs it) over a grid of streams 1/2/4/8 × block size 256 KiB/1 MiB/4 MiB ×
// compression off/zstd, on a 512 MiB file of random bytes (incompressible) and a 256 MiB
// log-like text file (compressible). Every copy is verified by sha256; the fastest case per
// dataset is printed with the escp flags that select it.
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { integerOption, parseSuiteArgs } from '../lib/args'
import { ensureBigFile, ensureLogFile, sha256File } from '../lib/datasets'
import type { Dataset } from '../lib/datasets'
import { SHIPPED_PLUGINS, runEscpCopy } from '../lib/escp-run'
import { QUIET_BUSY_PERCENT, describeMachine, loadLine, machineLine, startRun, waitForQuiet } from '../lib/machine'
import type { MachineInfo, QuietWait, RunConditions } from '../lib/machine'
import { publishResults, repoPath } from '../lib/results'
import { sourceLine, sourceState } from '../lib/source-state'
import type { SourceState } from '../lib/source-state'
import { median, timingStats } from '../lib/stats'
import type { TimingStats } from '../lib/stats'
import { TIMING_COLUMNS, fixed, markdownTable, timingCells } from '../lib/table'
import { withTeardown } from '../lib/teardown'

const execFileP = promisify(execFile)

const SUITE = 'sweep'
/** 2 runs × 24 cases × 2 datasets: about 5 minutes on a 2-core machine. */
const DEFAULT_RUNS = 2
const DEFAULT_DATA_DIR = path.resolve(__dirname, '..', 'data')
const MIB = 2 ** 20
const RANDOM = { name: 'random-512MiB.bin', bytes: 512 * MIB }
const LOG = { name: 'log-256MiB.log', bytes: 256 * MIB }
const STREAMS = [1, 2, 4, 8] as const
const BLOCKS = [256 * 1024, MIB, 4 * MIB] as const
const COMPRESSORS = ['none', 'zstd'] as const
/** escp's defaults, the case the best one is compared with. */
const DEFAULT_CASE = { streams: 4, blockSizeBytes: MIB, compressor: 'none' }
/** Short: 96 runs by default, and each wait costs at least a second. */
const QUIET_WAIT_MS = 5_000

export const usage = [
  `  --runs N     runs of each case (default ${DEFAULT_RUNS}; the grid has ${STREAMS.length * BLOCKS.length * COMPRESSORS.length} cases per dataset, 2 datasets)`,
  `  --data DIR   where the datasets are generated once and then reused (default ${repoPath(DEFAULT_DATA_DIR)}/)`,
].join('\n')

interface Case {
  streams: number
  blockSizeBytes: number
  compressor: string
}

interface RunRecord extends Case {
  run: number
  ok: boolean
  error?: string
  /** GNU time's wall time of the whole process (Node's start-up included), as the transfer suite reports. */
  wallSeconds: number
  /** User + system CPU of the process tree: the sender with its workers, and the receiver child. */
  cpuSeconds: number
  maxRssKiB: number
  /** The copy() call alone, from inside. */
  copyWallSeconds: number | null
  /** Block payload bytes sent, after compression. */
  wireBytes: number | null
  quiet: QuietWait
}

interface CaseStats extends Case, TimingStats {
  medianCpuSeconds: number | null
  /** File bytes over wire bytes (median): above 1, compression shrank the data. */
  compressionRatio: number | null
}

interface DatasetReport {
  id: 'random' | 'log'
  title: string
  dataset: { path: string; bytes: number; generated: boolean }
  runs: RunRecord[]
  stats: CaseStats[]
  best: Best | null
}

interface Best {
  case: CaseStats
  flags: string
  /** The defaults' median time over the best case's. */
  speedupOverDefaults: number | null
  /** Cases whose fastest run beat the best case's slowest: the runs cannot tell them apart. */
  overlapping: string[]
}

export interface SweepReport extends RunConditions {
  suite: string
  machine: MachineInfo
  source: SourceState
  method: { runs: number; dataDir: string; generateSeconds: number; streams: readonly number[]; blockSizes: readonly number[]; compressors: readonly string[]; glibcTunables: string | null }
  datasets: DatasetReport[]
}

export async function run(args: readonly string[] = []): Promise<void> {
  const values = parseSuiteArgs(SUITE, args, { runs: { type: 'string' }, data: { type: 'string' } })
  const runs = integerOption(SUITE, 'runs', values.runs, DEFAULT_RUNS)
  const dataDir = path.resolve(values.data ?? DEFAULT_DATA_DIR)
  const clock = startRun()
  const machine = describeMachine()
  const source = sourceState()
  const cases = grid()
  progress(`sweep: ${cases.length} cases × ${runs} run(s) × 2 datasets; data in ${dataDir}; ${machine.cpuModel}, ${machine.nproc} cores, Node ${machine.node}`)

  const report = await withTeardown(async (teardown) => {
    fs.mkdirSync(dataDir, { recursive: true })
    const genStart = Date.now()
    const random = ensureBigFile(dataDir, RANDOM)
    const log = ensureLogFile(dataDir, LOG)
    const generateSeconds = (Date.now() - genStart) / 1000
    progress(`datasets: ${random.path} ${random.generated ? 'generated' : 'reused'}, ${log.path} ${log.generated ? 'generated' : 'reused'}${random.generated || log.generated ? ` (${generateSeconds.toFixed(0)} s)` : ''}`)
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'escp-bench-sweep-'))
    teardown.add(`remove ${tmp}`, () => fs.rmSync(tmp, { recursive: true, force: true }))

    const datasets: DatasetReport[] = []
    for (const [id, title, dataset] of [
      ['random', `${RANDOM.bytes / MIB} MiB of random bytes`, random],
      ['log', `${LOG.bytes / MIB} MiB log-like text`, log],
    ] as const) {
      // Hashing the source also puts it in the page cache, where every run finds it.
      const digest = await sha256File(dataset.path)
      await execFileP('sync')
      progress(`${title}:`)
      const records: RunRecord[] = []
      for (let r = 0; r < runs; r++) {
        // Every other round goes through the grid backwards, so no case always runs right after the same one.
        for (const c of r % 2 ? [...cases].reverse() : cases) {
          const rec = await measureRun(c, r + 1, dataset, digest, tmp)
          records.push(rec)
          progress(`  ${caseName(c).padEnd(22)} run ${r + 1}: ${rec.ok ? `${rec.wallSeconds.toFixed(2)} s, ${(dataset.bytes / rec.wallSeconds / 1e6).toFixed(0)} MB/s, ${rec.cpuSeconds.toFixed(2)} CPU s` : `FAILED: ${rec.error}`}`)
        }
      }
      const stats = statsOf(cases, records, dataset.bytes)
      datasets.push({ id, title, dataset: { path: repoPath(dataset.path), bytes: dataset.bytes, generated: dataset.generated }, runs: records, stats, best: bestOf(stats) })
    }
    const result: SweepReport = {
      suite: SUITE,
      ...clock.finish(),
      machine,
      source,
      method: { runs, dataDir: repoPath(dataDir), generateSeconds, streams: STREAMS, blockSizes: BLOCKS, compressors: COMPRESSORS, glibcTunables: process.env.GLIBC_TUNABLES ?? null },
      datasets,
    }
    return result
  })

  publishResults(SUITE, clock.startedAt, report, renderSection)
  console.log('\nBest settings for this machine:')
  for (const line of bestLines(report)) console.log(line)
}

function grid(): Case[] {
  return STREAMS.flatMap((streams) => BLOCKS.flatMap((blockSizeBytes) => COMPRESSORS.map((compressor) => ({ streams, blockSizeBytes, compressor }))))
}

function blockName(bytes: number): string {
  return bytes >= MIB ? `${bytes / MIB}M` : `${bytes / 1024}K`
}

function caseName(c: Case): string {
  return `${c.streams} stream${c.streams === 1 ? '' : 's'}, ${blockName(c.blockSizeBytes)}, ${c.compressor}`
}

/** The escp command-line flags that select the case. */
function flagsOf(c: Case): string {
  return `-t ${c.streams} --blocksize ${blockName(c.blockSizeBytes)}${c.compressor === 'zstd' ? ' -C' : ''}`
}

function sameCase(a: Case, b: Case): boolean {
  return a.streams === b.streams && a.blockSizeBytes === b.blockSizeBytes && a.compressor === b.compressor
}

/** One copy: fresh destination, quiet machine, timed, verified, removed. */
async function measureRun(c: Case, run: number, dataset: Dataset, digest: string, dir: string): Promise<RunRecord> {
  const destination = path.join(dir, `t${c.streams}-${blockName(c.blockSizeBytes)}-${c.compressor}-${run}`)
  // Dirty pages of earlier copies are written back now, not during this one.
  await execFileP('sync')
  const quiet = await waitForQuiet(QUIET_WAIT_MS)
  const r = await runEscpCopy({ sources: [dataset.path], destination, options: { streams: c.streams, blockSizeBytes: c.blockSizeBytes, compressor: c.compressor, plugins: [...SHIPPED_PLUGINS] } })
  let error = r.error ?? undefined
  error ??= await verify(destination, dataset.bytes, digest)
  fs.rmSync(destination, { force: true })
  return {
    ...c,
    run,
    ok: error === undefined,
    error,
    wallSeconds: r.timed.wallSeconds,
    cpuSeconds: r.timed.userSeconds + r.timed.systemSeconds,
    maxRssKiB: r.timed.maxRssKiB,
    copyWallSeconds: r.copy?.wallSeconds ?? null,
    wireBytes: r.copy?.summary.wireBytes ?? null,
    quiet,
  }
}

async function verify(destination: string, bytes: number, digest: string): Promise<string | undefined> {
  try {
    const size = fs.statSync(destination).size
    if (size !== bytes) return `the copy has ${size} bytes, the source ${bytes}`
    if ((await sha256File(destination)) !== digest) return 'the copy has the right size but other bytes (sha256 differs)'
  } catch (err) {
    return `cannot read the copy: ${(err as Error).message}`
  }
  return undefined
}

function statsOf(cases: readonly Case[], records: readonly RunRecord[], bytes: number): CaseStats[] {
  return cases.map((c) => {
    const mine = records.filter((r) => sameCase(r, c))
    const ok = mine.filter((r) => r.ok)
    const wire = median(ok.flatMap((r) => (r.wireBytes ? [r.wireBytes] : [])))
    return {
      ...c,
      ...timingStats(ok.map((r) => r.wallSeconds), mine.length, bytes),
      medianCpuSeconds: median(ok.map((r) => r.cpuSeconds)),
      compressionRatio: wire ? bytes / wire : null,
    }
  })
}

/** The fastest case among those whose every run succeeded. */
function bestOf(stats: readonly CaseStats[]): Best | null {
  const whole = stats.filter((s) => s.runsOk === s.runs && s.medianSeconds !== null)
  if (whole.length === 0) return null
  const best = whole.reduce((a, b) => ((b.medianSeconds as number) < (a.medianSeconds as number) ? b : a))
  const defaults = stats.find((s) => sameCase(s, DEFAULT_CASE))?.medianSeconds ?? null
  return {
    case: best,
    flags: flagsOf(best),
    speedupOverDefaults: defaults === null ? null : defaults / (best.medianSeconds as number),
    overlapping: whole.filter((s) => s !== best && (s.minSeconds as number) <= (best.maxSeconds as number)).map(caseName),
  }
}

function bestLines(report: SweepReport): string[] {
  return report.datasets.map((d) => {
    const b = d.best
    if (!b) return `- ${d.title}: no case had all its runs succeed`
    const s = b.case
    const vsDefaults = b.speedupOverDefaults === null ? '' : sameCase(s, DEFAULT_CASE) ? '; these are the defaults' : `; ${b.speedupOverDefaults.toFixed(2)}× the defaults' speed (-t 4 --blocksize 1M, no -C)`
    const noGain =
      s.compressor !== 'none' && s.compressionRatio !== null && s.compressionRatio < 1.01
        ? `; zstd shrank nothing here (file ÷ wire ${s.compressionRatio.toFixed(2)}×), so its lead over \`${flagsOf({ ...s, compressor: 'none' })}\` is noise: leave -C off`
        : ''
    const ties = b.overlapping.length ? `; within the run-to-run spread of: ${b.overlapping.slice(0, 4).join('; ')}${b.overlapping.length > 4 ? `; and ${b.overlapping.length - 4} more` : ''}` : ''
    return `- ${d.title}: \`escp ${b.flags}\` (${caseName(s)}): ${fixed(s.medianSeconds)} s, ${Math.round(s.mbPerSecond as number)} MB/s, ${fixed(s.medianCpuSeconds)} CPU s${vsDefaults}${noGain}${ties}`
  })
}

/** The RESULTS.md section, from the report alone (so it can be redrawn from a stored JSON). */
export function renderSection(report: SweepReport, jsonFile: string): string {
  const { method } = report
  const tables = report.datasets.flatMap((d) => {
    const rows = d.stats.map((s) => [
      String(s.streams),
      blockName(s.blockSizeBytes),
      s.compressor,
      ...timingCells(s),
      fixed(s.medianCpuSeconds),
      s.compressionRatio === null ? '' : `${s.compressionRatio.toFixed(2)}×`,
      d.best && sameCase(s, d.best.case) ? '**best**' : sameCase(s, DEFAULT_CASE) ? 'defaults' : '',
    ])
    const failures = d.runs.filter((r) => !r.ok).map((r) => `- ${caseName(r)} run ${r.run} failed: ${r.error}`)
    const busy = d.runs.filter((r) => r.quiet.busyPercent !== null && r.quiet.busyPercent > QUIET_BUSY_PERCENT)
    const busyNote = busy.length
      ? [`- ${busy.length} run${busy.length === 1 ? '' : 's'} started with the machine still busy (more than ${QUIET_BUSY_PERCENT}% of the CPUs after the ${QUIET_WAIT_MS / 1000} s wait), so slower than it could be: ${busy.map((r) => `${caseName(r)} run ${r.run} (${r.quiet.busyPercent}%)`).join('; ')}.`]
      : []
    return [
      `### ${d.title}`,
      '',
      `\`${d.dataset.path}\`, ${d.dataset.bytes} bytes, ${d.dataset.generated ? 'generated by this run' : 'reused'}.`,
      '',
      markdownTable(
        [
          { header: 'streams', align: 'right' },
          { header: 'block' },
          { header: 'compression' },
          ...TIMING_COLUMNS,
          { header: 'median CPU s', align: 'right' },
          { header: 'file ÷ wire bytes', align: 'right' },
          { header: '' },
        ],
        rows,
      ),
      ...(failures.length || busy.length ? ['', ...failures, ...busyNote] : []),
      '',
    ]
  })
  const waited = Math.round(report.datasets.reduce((t, d) => t + d.runs.reduce((u, r) => u + r.quiet.waitedSeconds, 0), 0))
  return [
    `## ${SUITE}`,
    '',
    `Measured ${report.date} by \`npm run bench -- ${SUITE}\` in ${Math.round(report.durationSeconds / 60)} min; data: \`${jsonFile}\`.`,
    '',
    machineLine(report.machine),
    `- Node ${report.machine.node}`,
    loadLine(report),
    sourceLine(report.source),
    `- Datasets in \`${method.dataDir}\`; the source is read from the page cache (hashed just before its cases), the copies go to a temporary directory on the same disk.`,
    '',
    `escp in loopback mode, as the transfer suite runs it: \`copy({sources: [FILE], destination: DST, options: {streams, blockSizeBytes, compressor}})\` in a Node process of its own (\`bench/lib/escp-copy.cjs\`), everything else at its default (aes-128-gcm, xxh64 verification, node-fs engine, queue depth 4). Grid: streams ${method.streams.join('/')} × block ${method.blockSizes.map(blockName).join('/')} × compression ${method.compressors.join('/')} (zstd at its default level; blocks that do not shrink go raw). ${method.runs} run${method.runs > 1 ? 's' : ''} of each case${method.runs === 2 ? ' (the median of two is their mean; min and max show the spread)' : ''}, every other round in reverse order; \`sync\` before each run, and a wait of up to ${QUIET_WAIT_MS / 1000} s for a second with at most ${QUIET_BUSY_PERCENT}% of the CPUs busy (waited ${waited} s in all); each copy checked by sha256, then removed.`,
    '',
    '- **s**: wall time of the process (GNU time `%e`), Node\'s start-up included. **MB/s**: file bytes over the median s. **CPU s**: user + system CPU of the sender process (with its stream workers) and the receiver child. **file ÷ wire bytes**: the file\'s bytes over the block payload bytes sent (copy()\'s `wireBytes`): 1.00× when nothing was compressed.',
    '',
    '**Best settings for this machine** (fastest median with every run successful):',
    '',
    ...bestLines(report),
    '',
    ...tables,
  ].join('\n')
}

function progress(line: string): void {
  process.stderr.write(`${line}\n`)
}
