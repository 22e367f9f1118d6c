// The I/O engines (node-fs, posix, uring) on this machine's disk, beside fio and dd in the same
// run: each engine alone reading and writing one file (64 KiB and 1 MiB blocks, buffered and
// O_DIRECT, 16 I/Os in flight), fio (psync, one at a time; libaio, 16 in flight, for O_DIRECT)
// and dd on the same cases, then a loopback escp copy of the transfer suite's 2 GiB file with
// each engine.
// Reads start with the file dropped from the page cache; writes go to a new file and end
// with an fsync. Every measurement runs in a process of its own, for its CPU and peak RSS.
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { promisify } from 'node:util'
import { loadPlugins, resolvePluginModule } from '@escp/core'
import { UsageError, integerOption, parseSuiteArgs } from '../lib/args'
import { ensureBigFile, sha256File } from '../lib/datasets'
import { runEngineIo } from '../lib/engine-io'
import { runEscpCopy } from '../lib/escp-run'
import { QUIET_BUSY_PERCENT, describeMachine, fileSystemName, loadLine, machineLine, startRun, waitForQuiet } from '../lib/machine'
import type { MachineInfo, QuietWait, RunConditions } from '../lib/machine'
import { dropFileCache } from '../lib/page-cache'
import type { CacheDrop } from '../lib/page-cache'
import { ddVersion, fioVersion, runDd, runFio } from '../lib/reference-io'
import type { FileIoJob } from '../lib/reference-io'
import { publishResults, repoPath } from '../lib/results'
import { sourceLine, sourceState } from '../lib/source-state'
import type { SourceState } from '../lib/source-state'
import { median, timingStats } from '../lib/stats'
import type { TimingStats } from '../lib/stats'
import { TIMING_COLUMNS, fixed, formatRate, markdownTable, timingCells } from '../lib/table'
import { withTeardown } from '../lib/teardown'

const execFileP = promisify(execFile)

const SUITE = 'engines'
const DEFAULT_RUNS = 3
const MIB = 2 ** 20
const GIB = 2 ** 30
const DEFAULT_SIZE_BYTES = GIB
/** The transfer suite's dataset, so both suites copy the same file. */
const DEFAULT_TRANSFER_BYTES = 2 * GIB
const DEFAULT_DIR = path.resolve(__dirname, '..', 'data')
const BLOCKS = [64 * 1024, MIB] as const
/**
 * Reads or writes in flight per handle, for the engines and for fio's libaio: posix runs its
 * I/O on its own threads and uring keeps many in its ring, so one at a time would leave them idle.
 */
const QUEUE_DEPTH = 16
/** Engines measured when registered; others (dummy) keep nothing on disk. */
const ENGINES = ['node-fs', 'posix', 'uring'] as const
/** The plugins loaded besides the built-ins, each for the engine it must register. */
const ENGINE_PLUGINS = [
  { engine: 'posix', specifier: '@escp/engine-posix' },
  { engine: 'uring', specifier: '@escp/engine-uring' },
] as const
/** The engines the copy compares. */
const TRANSFER_ENGINES = ['node-fs', 'posix', 'uring'] as const
/** The target: the posix engine at least this share of fio's throughput, same block size and mode. */
const TARGET_SHARE = 0.9
/**
 * The uring engine's targets against posix, medians of the same run: at least posix's GB/s at
 * 1 MiB, at least 1.5× posix's at 64 KiB O_DIRECT reads (where batched submission into
 * registered buffers should pay most), and less CPU per GB.
 */
const URING_THROUGHPUT_TARGETS: readonly { op: Op; blockBytes: number; direct: boolean; atLeast: number }[] = [
  ...(['read', 'write'] as const).flatMap((op) => [false, true].map((direct) => ({ op, blockBytes: MIB, direct, atLeast: 1 }))),
  { op: 'read', blockBytes: 64 * 1024, direct: true, atLeast: 1.5 },
]
/** Short: about 150 measurements by default, and each wait costs at least a second. */
const QUIET_WAIT_MS = 5_000

export const usage = [
  `  --runs N                runs of each tool in each case (default ${DEFAULT_RUNS})`,
  `  --size SIZE             the file each engine, fio and dd read and write, e.g. 64M or 1G (default ${sizeText(DEFAULT_SIZE_BYTES)}); a whole number of MiB`,
  `  --transfer-size SIZE    the file copied with each engine (default ${sizeText(DEFAULT_TRANSFER_BYTES)}, the transfer suite's)`,
  `  --dir DIR               where the files are read and written, generated once and then reused (default ${repoPath(DEFAULT_DIR)}/)`,
].join('\n')

type Op = 'read' | 'write'

interface IoCase {
  id: string
  op: Op
  blockBytes: number
  direct: boolean
}

type IoTool = { kind: 'engine'; engine: string } | { kind: 'fio'; ioengine: 'psync' | 'libaio' | 'io_uring'; iodepth: number } | { kind: 'dd' }

const FIO_PSYNC: IoTool = { kind: 'fio', ioengine: 'psync', iodepth: 1 }
const FIO_LIBAIO: IoTool = { kind: 'fio', ioengine: 'libaio', iodepth: QUEUE_DEPTH }
/**
 * The disk's ceiling in the O_DIRECT cases: fio through io_uring with four times the engines'
 * I/Os in flight. Not a reference for any target; it shows whether a target asks for more than
 * the disk gives at any depth (here 64 KiB O_DIRECT reads: 1.03-1.40 GB/s at depths 16 and 64).
 */
const FIO_URING_DEEP: IoTool = { kind: 'fio', ioengine: 'io_uring', iodepth: 4 * QUEUE_DEPTH }

interface IoRun {
  tool: string
  run: number
  ok: boolean
  error?: string
  command: string
  /** The I/O alone, as the tool or engine-io.cjs timed it. */
  seconds: number | null
  gbPerSecond: number | null
  /** User + system CPU of the I/O phase. */
  cpuSeconds: number | null
  /** User + system CPU of the whole process (start-up included), GNU time. */
  processCpuSeconds: number
  processWallSeconds: number
  maxRssKiB: number
  /** Engines: whether the descriptors the engine held on the file had O_DIRECT. */
  oDirect?: boolean | null
  /** Reads: what was done to the page cache first, and what of the file was left in it. */
  cache?: CacheDrop
  quiet: QuietWait
}

interface IoStats {
  tool: string
  kind: IoTool['kind']
  runsOk: number
  runs: number
  medianGbPerSecond: number | null
  minGbPerSecond: number | null
  maxGbPerSecond: number | null
  medianCpuSecondsPerGb: number | null
  maxRssKiB: number | null
  /** Engines: O_DIRECT seen on the file in every successful run; others: as asked. */
  oDirect: boolean | null
  /** This row's median GB/s over the case's fio reference's (engines only). */
  shareOfFio: number | null
}

interface CaseReport extends IoCase {
  /** The fio row the engines are compared with. */
  fioReference: string | null
  runs: IoRun[]
  stats: IoStats[]
}

interface TransferRun {
  engine: string
  run: number
  ok: boolean
  error?: string
  /** GNU time's wall time of the whole copy (both Node start-ups included), as the transfer suite reports. */
  wallSeconds: number
  /** copy() alone, from inside. */
  copyWallSeconds: number | null
  /** An fsync of the copy right after copy() returned: what it left in the page cache to write. */
  fsyncSeconds: number | null
  /** User + system CPU of the process tree: the sender with its workers, and the receiver child. */
  cpuSeconds: number
  maxRssKiB: number
  cache: CacheDrop
  quiet: QuietWait
}

interface TransferStats extends TimingStats {
  engine: string
  medianFsyncSeconds: number | null
  /** Bytes over the median of (wall + fsync): the copy on the disk. */
  mbPerSecondWithFsync: number | null
  medianCpuSeconds: number | null
  cpuSecondsPerGb: number | null
  maxRssKiB: number | null
}

interface EngineEntry {
  name: string
  plugin: string
  available: boolean
  reason?: string
}

interface PluginEntry {
  /** The engine the plugin is loaded for. */
  engine: string
  specifier: string
  /** Where it resolved to, when it did and loaded. */
  module: string | null
  /** Why its engine is not measured, when the plugin is the reason. */
  problem: string | null
}

/** One engine's medians over another's, in the copy. */
interface CopyRatio {
  throughput: number
  throughputWithFsync: number
  cpuPerGb: number
}

/** uring's median over posix's in one case; or (CPU, case 'all N cases') uring's CPU per GB summed over the cases both ran, over posix's. */
interface UringTarget {
  measure: 'throughput' | 'cpuPerGb'
  case: string
  ratio: number | null
  /** Throughput: met when ratio ≥ bound; CPU per GB: met when ratio < bound. */
  bound: number
  met: boolean | null
  /** O_DIRECT cases in which either engine held no O_DIRECT descriptor on the file. */
  buffered: string[]
  /** Throughput: the fastest median of any tool in the case, which a bound above it cannot be met within. */
  fastest?: { tool: string; gbPerSecond: number } | null
}

interface EnginesReport extends RunConditions {
  suite: string
  machine: MachineInfo
  source: SourceState
  tools: { fio: string | null; dd: string | null }
  method: {
    runs: number
    dir: string
    fileSystem: string
    sizeBytes: number
    transferBytes: number
    blockSizesBytes: readonly number[]
    queueDepth: number
    uvThreadpoolSize: string | null
    datasetsGenerated: boolean
  }
  /** The engine plugins, and why one's engine is not measured when the plugin is the reason. */
  plugins: PluginEntry[]
  engines: EngineEntry[]
  cases: CaseReport[]
  transfer: {
    dataset: { path: string; bytes: number }
    runs: TransferRun[]
    stats: TransferStats[]
    /** posix over node-fs, medians; null without both. */
    posixVsNodeFs: CopyRatio | null
    /** uring over posix, medians; null without both. */
    uringVsPosix: CopyRatio | null
  }
  /** Per case: posix's median over the fio reference's; and over the fastest fio row, when that is another. */
  targets: { case: string; fioReference: string; posixShare: number | null; met: boolean | null; fastestFio: string | null; posixShareOfFastest: number | null }[]
  /** The uring engine against posix: throughput in the cases of URING_THROUGHPUT_TARGETS, CPU per GB in every case and over all. */
  uringTargets: UringTarget[]
}

export async function run(args: readonly string[] = []): Promise<void> {
  const values = parseSuiteArgs(SUITE, args, { runs: { type: 'string' }, size: { type: 'string' }, 'transfer-size': { type: 'string' }, dir: { type: 'string' } })
  const runs = integerOption(SUITE, 'runs', values.runs, DEFAULT_RUNS)
  const sizeBytes = sizeOption('size', values.size, DEFAULT_SIZE_BYTES)
  const transferBytes = sizeOption('transfer-size', values['transfer-size'], DEFAULT_TRANSFER_BYTES)
  const dir = path.resolve(values.dir ?? DEFAULT_DIR)
  const clock = startRun()
  const machine = describeMachine()
  const source = sourceState()
  const tools = { fio: await fioVersion(), dd: await ddVersion() }
  progress(`engines: ${runs} run(s) of each tool; ${sizeText(sizeBytes)} per read or write, ${sizeText(transferBytes)} copied; files in ${dir}; ${machine.cpuModel}, ${machine.nproc} cores, Node ${machine.node}`)
  if (tools.fio === null) progress('fio missing: apt-get install fio (its rows are skipped)')
  if (tools.dd === null) progress('dd missing: apt-get install coreutils (its rows are skipped)')

  const { modules: plugins, entries: pluginEntries, engines } = await loadEngines()
  for (const e of engines) progress(`engine '${e.name}' (${e.plugin}): ${e.available ? 'measured' : `skipped: ${e.reason}`}`)
  for (const p of pluginEntries) if (p.problem) progress(`engine '${p.engine}': skipped: ${p.problem}`)
  const measured = engines.filter((e) => e.available).map((e) => e.name)

  const report = await withTeardown(async (teardown) => {
    fs.mkdirSync(dir, { recursive: true })
    const readFile = ensureBigFile(dir, { name: `random-${sizeName(sizeBytes)}.bin`, bytes: sizeBytes })
    const copySource = ensureBigFile(dir, { name: `random-${sizeName(transferBytes)}.bin`, bytes: transferBytes })
    await execFileP('sync')
    const generated = readFile.generated || copySource.generated
    progress(`files ${generated ? 'generated' : 'reused'}: ${[...new Set([readFile.path, copySource.path])].join(', ')}`)
    // Writes and copies go beside the files read: the same disk and file system.
    const tmp = fs.mkdtempSync(path.join(dir, '.engines-'))
    teardown.add(`remove ${tmp}`, () => fs.rmSync(tmp, { recursive: true, force: true }))

    const cases: CaseReport[] = []
    for (const op of ['read', 'write'] as const) {
      for (const blockBytes of BLOCKS) {
        for (const direct of [false, true]) {
          const c: IoCase = { id: caseId(op, blockBytes, direct), op, blockBytes, direct }
          const caseTools = ioToolsFor(c, measured, tools)
          const reference = tools.fio === null ? null : fioReferenceOf(c)
          progress(`${c.id}:`)
          const records: IoRun[] = []
          for (let r = 0; r < runs; r++) {
            // Each round starts with another tool, so none always runs first.
            for (let k = 0; k < caseTools.length; k++) {
              const tool = caseTools[(k + r) % caseTools.length]
              const rec = await measureIo(c, tool, r + 1, { readFile: readFile.path, tmp, sizeBytes, plugins })
              records.push(rec)
              progress(`  ${rec.tool} run ${rec.run}: ${rec.ok ? `${formatRate(rec.gbPerSecond as number)} GB/s, ${(rec.cpuSeconds as number).toFixed(2)} CPU s${rec.oDirect === false && c.direct ? ', without O_DIRECT' : ''}` : `FAILED: ${rec.error}`}`)
            }
          }
          cases.push({ ...c, fioReference: reference && labelOf(reference), runs: records, stats: ioStatsOf(c, caseTools, records, sizeBytes, reference) })
        }
      }
    }

    progress(`copy of ${copySource.path}:`)
    const digest = await sha256File(copySource.path)
    const copyEngines = TRANSFER_ENGINES.filter((e) => measured.includes(e))
    const transferRuns: TransferRun[] = []
    for (let r = 0; r < runs; r++) {
      for (let k = 0; k < copyEngines.length; k++) {
        const engine = copyEngines[(k + r) % copyEngines.length]
        const rec = await measureCopy(engine, r + 1, { source: copySource.path, bytes: transferBytes, digest, tmp, plugins })
        transferRuns.push(rec)
        progress(`  ${engine} run ${rec.run}: ${rec.ok ? `${rec.wallSeconds.toFixed(2)} s (+${(rec.fsyncSeconds as number).toFixed(2)} s fsync), ${rec.cpuSeconds.toFixed(2)} CPU s` : `FAILED: ${rec.error}`}`)
      }
    }
    const transferStats = copyEngines.map((e) => transferStatsOf(e, transferRuns, transferBytes))
    const result: EnginesReport = {
      suite: SUITE,
      ...clock.finish(),
      machine,
      source,
      tools,
      method: {
        runs,
        dir: repoPath(dir),
        fileSystem: fileSystemName(dir),
        sizeBytes,
        transferBytes,
        blockSizesBytes: BLOCKS,
        queueDepth: QUEUE_DEPTH,
        uvThreadpoolSize: process.env.UV_THREADPOOL_SIZE ?? null,
        datasetsGenerated: generated,
      },
      plugins: pluginEntries,
      engines,
      cases,
      transfer: {
        dataset: { path: repoPath(copySource.path), bytes: transferBytes },
        runs: transferRuns,
        stats: transferStats,
        posixVsNodeFs: copyRatio(transferStats, 'posix', 'node-fs'),
        uringVsPosix: copyRatio(transferStats, 'uring', 'posix'),
      },
      targets: targetsOf(cases),
      uringTargets: uringTargetsOf(cases),
    }
    return result
  })

  publishResults(SUITE, clock.startedAt, report, renderSection)
}

/**
 * The built-ins plus each plugin of ENGINE_PLUGINS that resolves, loads beside the ones before it
 * and registers its engine; every engine of ENGINES that is registered. `modules` is what each
 * measurement's process loads, so the engines resolve there by name as here.
 */
async function loadEngines(): Promise<{ modules: string[]; entries: PluginEntry[]; engines: EngineEntry[] }> {
  const modules: string[] = []
  const entries: PluginEntry[] = []
  let set = await loadPlugins()
  for (const { engine, specifier } of ENGINE_PLUGINS) {
    const entry: PluginEntry = { engine, specifier, module: null, problem: null }
    entries.push(entry)
    let module: string
    try {
      module = resolvePluginModule(specifier)
    } catch {
      entry.problem = `missing: ${specifier} cannot be resolved (not installed, or not built)`
      continue
    }
    try {
      const next = await loadPlugins({ plugins: [...modules, module] })
      if (!next.registry.list('engine').some((e) => e.name === engine)) {
        entry.problem = `${specifier} loaded but registered no engine named '${engine}'`
        continue
      }
      set = next
    } catch (err) {
      entry.problem = `${specifier} did not load: ${(err as Error).message}`
      continue
    }
    modules.push(module)
    entry.module = repoPath(module)
  }
  const listed = set.registry.list('engine')
  const engines = ENGINES.flatMap((name) => {
    const e = listed.find((x) => x.name === name)
    if (!e) return []
    return [{ name, plugin: e.plugin, available: e.availability.ok, ...(e.availability.ok ? {} : { reason: e.availability.reason }) }]
  })
  return { modules, entries, engines }
}

function ioToolsFor(c: IoCase, engines: readonly string[], tools: EnginesReport['tools']): IoTool[] {
  return [
    ...engines.map((engine): IoTool => ({ kind: 'engine', engine })),
    ...(tools.fio === null ? [] : c.direct ? [FIO_PSYNC, FIO_LIBAIO, FIO_URING_DEEP] : [FIO_PSYNC]),
    ...(tools.dd === null ? [] : [{ kind: 'dd' } as const]),
  ]
}

/**
 * What an engine with 16 I/Os in flight is compared with: for O_DIRECT, libaio with the same
 * 16 in flight; buffered, psync, since libaio on a buffered file completes each I/O before it
 * returns (so its iodepth means nothing) and the kernel's read-ahead and write-back already
 * keep the disk busy behind one I/O at a time.
 */
function fioReferenceOf(c: IoCase): IoTool {
  return c.direct ? FIO_LIBAIO : FIO_PSYNC
}

function labelOf(tool: IoTool): string {
  switch (tool.kind) {
    case 'engine':
      return tool.engine
    case 'fio':
      return `fio ${tool.ioengine} iodepth ${tool.iodepth}`
    case 'dd':
      return 'dd'
  }
}

interface IoContext {
  readFile: string
  tmp: string
  sizeBytes: number
  plugins: string[]
}

/** One pass by one tool: a quiet machine, then the read of a file out of the page cache or the write of a new one. */
async function measureIo(c: IoCase, tool: IoTool, run: number, ctx: IoContext): Promise<IoRun> {
  const label = labelOf(tool)
  const target = c.op === 'read' ? ctx.readFile : path.join(ctx.tmp, `write-${label.replace(/\W+/g, '-')}.bin`)
  if (c.op === 'write') {
    fs.rmSync(target, { force: true })
    // What earlier writes left dirty (and the discards of removed files) goes to the disk now, not during this one.
    await execFileP('sync')
  }
  const quiet = await waitForQuiet(QUIET_WAIT_MS)
  const cache = c.op === 'read' ? await dropFileCache(target) : undefined
  const job: FileIoJob = { op: c.op, path: target, sizeBytes: ctx.sizeBytes, blockBytes: c.blockBytes, direct: c.direct }
  const base = { tool: label, run, quiet, ...(cache ? { cache } : {}) }
  let rec: IoRun
  if (tool.kind === 'engine') {
    const r = await runEngineIo({ ...job, engine: tool.engine, plugins: ctx.plugins, queueDepth: QUEUE_DEPTH })
    const d = r.io?.descriptors
    rec = {
      ...base,
      ok: r.error === null,
      ...(r.error === null ? {} : { error: r.error }),
      command: r.timed.command,
      seconds: r.io?.seconds ?? null,
      gbPerSecond: r.io ? ctx.sizeBytes / r.io.seconds / 1e9 : null,
      cpuSeconds: r.io ? r.io.cpuUserSeconds + r.io.cpuSystemSeconds : null,
      processCpuSeconds: r.timed.userSeconds + r.timed.systemSeconds,
      processWallSeconds: r.timed.wallSeconds,
      maxRssKiB: r.timed.maxRssKiB,
      oDirect: d ? d.count > 0 && d.direct === d.count : null,
    }
  } else {
    const r = tool.kind === 'fio' ? await runFio(job, tool, path.join(ctx.tmp, 'fio-output.json')) : await runDd(job)
    rec = {
      ...base,
      ok: r.error === null,
      ...(r.error === null ? {} : { error: r.error }),
      command: r.timed.command,
      seconds: r.seconds,
      gbPerSecond: r.seconds === null ? null : ctx.sizeBytes / r.seconds / 1e9,
      cpuSeconds: r.cpuSeconds,
      processCpuSeconds: r.timed.userSeconds + r.timed.systemSeconds,
      processWallSeconds: r.timed.wallSeconds,
      maxRssKiB: r.timed.maxRssKiB,
    }
  }
  if (c.op === 'write') fs.rmSync(target, { force: true })
  return rec
}

function ioStatsOf(c: IoCase, tools: readonly IoTool[], records: readonly IoRun[], bytes: number, reference: IoTool | null): IoStats[] {
  const stats = tools.map((tool): IoStats => {
    const label = labelOf(tool)
    const mine = records.filter((r) => r.tool === label)
    const ok = mine.filter((r) => r.ok)
    const rates = ok.map((r) => r.gbPerSecond as number)
    return {
      tool: label,
      kind: tool.kind,
      runsOk: ok.length,
      runs: mine.length,
      medianGbPerSecond: median(rates),
      minGbPerSecond: ok.length ? Math.min(...rates) : null,
      maxGbPerSecond: ok.length ? Math.max(...rates) : null,
      medianCpuSecondsPerGb: median(ok.map((r) => (r.cpuSeconds as number) / (bytes / 1e9))),
      maxRssKiB: ok.length ? Math.max(...ok.map((r) => r.maxRssKiB)) : null,
      oDirect: tool.kind !== 'engine' ? c.direct : ok.length ? ok.every((r) => r.oDirect === true) : null,
      shareOfFio: null,
    }
  })
  const ref = reference && stats.find((s) => s.tool === labelOf(reference))?.medianGbPerSecond
  for (const s of stats) if (s.kind === 'engine' && ref && s.medianGbPerSecond !== null) s.shareOfFio = s.medianGbPerSecond / ref
  return stats
}

function targetsOf(cases: readonly CaseReport[]): EnginesReport['targets'] {
  return cases.flatMap((c) => {
    if (c.fioReference === null) return []
    const posix = c.stats.find((s) => s.tool === 'posix')?.medianGbPerSecond ?? null
    const share = c.stats.find((s) => s.tool === 'posix')?.shareOfFio ?? null
    const fastest = c.stats
      .filter((s) => s.kind === 'fio' && s.medianGbPerSecond !== null)
      .reduce<IoStats | null>((best, s) => (best === null || (s.medianGbPerSecond as number) > (best.medianGbPerSecond as number) ? s : best), null)
    const other = fastest !== null && fastest.tool !== c.fioReference
    return [
      {
        case: c.id,
        fioReference: c.fioReference,
        posixShare: share,
        met: share === null ? null : share >= TARGET_SHARE,
        fastestFio: other ? fastest.tool : null,
        posixShareOfFastest: other && posix !== null ? posix / (fastest.medianGbPerSecond as number) : null,
      },
    ]
  })
}

/**
 * uring over posix in each case, from their medians: GB/s where URING_THROUGHPUT_TARGETS sets a
 * bound, CPU per GB everywhere, and CPU per GB over all the cases both engines ran.
 */
function uringTargetsOf(cases: readonly CaseReport[]): UringTarget[] {
  const statsOf = (c: CaseReport, engine: string) => c.stats.find((s) => s.tool === engine)
  const bufferedIn = (c: CaseReport) => (c.direct ? ['uring', 'posix'].filter((e) => statsOf(c, e)?.oDirect === false) : [])
  const throughput = URING_THROUGHPUT_TARGETS.flatMap((t): UringTarget[] => {
    const c = cases.find((x) => x.op === t.op && x.blockBytes === t.blockBytes && x.direct === t.direct)
    if (!c) return []
    const ratio = ratioOf(statsOf(c, 'uring')?.medianGbPerSecond, statsOf(c, 'posix')?.medianGbPerSecond)
    const fastest = c.stats.reduce<{ tool: string; gbPerSecond: number } | null>(
      (best, s) => (s.medianGbPerSecond !== null && (best === null || s.medianGbPerSecond > best.gbPerSecond) ? { tool: s.tool, gbPerSecond: s.medianGbPerSecond } : best),
      null,
    )
    return [{ measure: 'throughput', case: c.id, ratio, bound: t.atLeast, met: ratio === null ? null : ratio >= t.atLeast, buffered: bufferedIn(c), fastest }]
  })
  const cpuOf = (c: CaseReport) => ({ uring: statsOf(c, 'uring')?.medianCpuSecondsPerGb ?? null, posix: statsOf(c, 'posix')?.medianCpuSecondsPerGb ?? null })
  const cpu = cases.map((c): UringTarget => {
    const { uring, posix } = cpuOf(c)
    const ratio = ratioOf(uring, posix)
    return { measure: 'cpuPerGb', case: c.id, ratio, bound: 1, met: ratio === null ? null : ratio < 1, buffered: bufferedIn(c) }
  })
  // Every case moves the same bytes, so summing CPU per GB over them weighs each case alike.
  const both = cases.map(cpuOf).filter((x): x is { uring: number; posix: number } => x.uring !== null && x.posix !== null)
  const overall = ratioOf(
    both.reduce((sum, x) => sum + x.uring, 0),
    both.reduce((sum, x) => sum + x.posix, 0),
  )
  const all: UringTarget = { measure: 'cpuPerGb', case: `all ${both.length} cases`, ratio: overall, bound: 1, met: overall === null ? null : overall < 1, buffered: [] }
  return [...throughput, ...cpu, all]
}

/** a ÷ b, or null without both (or with b zero). */
function ratioOf(a: number | null | undefined, b: number | null | undefined): number | null {
  return typeof a === 'number' && typeof b === 'number' && b > 0 ? a / b : null
}

interface CopyContext {
  source: string
  bytes: number
  digest: string
  tmp: string
  plugins: string[]
}

/** One loopback copy with one engine (on both sides): the source out of the page cache, the copy fsynced after, then checked and removed. */
async function measureCopy(engine: string, run: number, ctx: CopyContext): Promise<TransferRun> {
  const destination = path.join(ctx.tmp, `copy-${engine}-${run}.bin`)
  await execFileP('sync')
  const quiet = await waitForQuiet(QUIET_WAIT_MS)
  // O_DIRECT reads (escp's default, where the engine can) never see the page cache; without
  // the drop, an engine that reads through the cache would be copying from memory.
  const cache = await dropFileCache(ctx.source)
  const r = await runEscpCopy({ sources: [ctx.source], destination, options: { engine, plugins: ctx.plugins } })
  let error = r.error ?? undefined
  let fsyncSeconds: number | null = null
  if (error === undefined) {
    const start = process.hrtime.bigint()
    const fd = fs.openSync(destination, 'r')
    try {
      fs.fsyncSync(fd)
    } finally {
      fs.closeSync(fd)
    }
    fsyncSeconds = Number(process.hrtime.bigint() - start) / 1e9
    try {
      if ((await sha256File(destination)) !== ctx.digest) error = 'the copy differs from the source (sha256)'
    } catch (err) {
      error = `cannot read the copy: ${(err as Error).message}`
    }
  }
  fs.rmSync(destination, { force: true })
  return {
    engine,
    run,
    ok: error === undefined,
    ...(error === undefined ? {} : { error }),
    wallSeconds: r.timed.wallSeconds,
    copyWallSeconds: r.copy?.wallSeconds ?? null,
    fsyncSeconds,
    cpuSeconds: r.timed.userSeconds + r.timed.systemSeconds,
    maxRssKiB: r.timed.maxRssKiB,
    cache,
    quiet,
  }
}

function transferStatsOf(engine: string, records: readonly TransferRun[], bytes: number): TransferStats {
  const mine = records.filter((r) => r.engine === engine)
  const ok = mine.filter((r) => r.ok)
  const withFsync = median(ok.map((r) => r.wallSeconds + (r.fsyncSeconds as number)))
  const medianCpuSeconds = median(ok.map((r) => r.cpuSeconds))
  return {
    engine,
    ...timingStats(ok.map((r) => r.wallSeconds), mine.length, bytes),
    medianFsyncSeconds: median(ok.map((r) => r.fsyncSeconds as number)),
    mbPerSecondWithFsync: withFsync === null ? null : bytes / withFsync / 1e6,
    medianCpuSeconds,
    cpuSecondsPerGb: medianCpuSeconds === null ? null : medianCpuSeconds / (bytes / 1e9),
    maxRssKiB: ok.length ? Math.max(...ok.map((r) => r.maxRssKiB)) : null,
  }
}

/** Engine `a`'s copy medians over engine `b`'s; null without both. */
function copyRatio(stats: readonly TransferStats[], a: string, b: string): CopyRatio | null {
  const x = stats.find((s) => s.engine === a)
  const y = stats.find((s) => s.engine === b)
  if (!x?.mbPerSecond || !y?.mbPerSecond || !x.mbPerSecondWithFsync || !y.mbPerSecondWithFsync || !x.cpuSecondsPerGb || !y.cpuSecondsPerGb) return null
  return {
    throughput: x.mbPerSecond / y.mbPerSecond,
    throughputWithFsync: x.mbPerSecondWithFsync / y.mbPerSecondWithFsync,
    cpuPerGb: x.cpuSecondsPerGb / y.cpuSecondsPerGb,
  }
}

// ---- the RESULTS.md section ----

/** The RESULTS.md section, from the report alone (so it can be redrawn from a stored JSON). */
export function renderSection(report: EnginesReport, jsonFile: string): string {
  const { machine, method } = report
  const ioTable = (op: Op) =>
    markdownTable(
      [
        { header: 'case' },
        { header: 'tool' },
        { header: 'O_DIRECT' },
        { header: 'runs ok' },
        { header: 'median GB/s', align: 'right' },
        { header: 'min GB/s', align: 'right' },
        { header: 'max GB/s', align: 'right' },
        { header: 'CPU s/GB', align: 'right' },
        { header: 'peak RSS MiB', align: 'right' },
        { header: '÷ fio reference', align: 'right' },
      ],
      report.cases
        .filter((c) => c.op === op)
        .flatMap((c) =>
          c.stats.map((s) => [
            c.id,
            s.tool,
            s.oDirect === null ? '' : s.oDirect ? 'yes' : 'no',
            `${s.runsOk}/${s.runs}`,
            rate(s.medianGbPerSecond),
            rate(s.minGbPerSecond),
            rate(s.maxGbPerSecond),
            fixed(s.medianCpuSecondsPerGb),
            s.maxRssKiB === null ? '' : Math.round(s.maxRssKiB / 1024).toString(),
            s.tool === c.fioReference ? '(reference)' : s.shareOfFio === null ? '' : `${Math.round(s.shareOfFio * 100)}%${c.direct && s.oDirect === false ? ', buffered' : ''}`,
          ]),
        ),
    )
  const ioFailures = report.cases.flatMap((c) => c.runs.filter((r) => !r.ok).map((r) => `- ${c.id}, ${r.tool} run ${r.run} failed: ${r.error}`))
  const cached = report.cases.flatMap((c) => c.runs.flatMap((r) => (r.cache && r.cache.residentBytes !== null ? [r.cache.residentBytes] : [])))
  const dropMethods = [...new Set([...report.cases.flatMap((c) => c.runs), ...report.transfer.runs].flatMap((r) => (r.cache ? [r.cache.method] : [])))]
  const t = report.transfer
  const transferTable = markdownTable(
    [
      { header: 'engine' },
      ...TIMING_COLUMNS,
      { header: 'fsync after, s', align: 'right' },
      { header: 'MB/s with fsync', align: 'right' },
      { header: 'CPU s', align: 'right' },
      { header: 'CPU s/GB', align: 'right' },
      { header: 'peak RSS MiB', align: 'right' },
    ],
    t.stats.map((s) => [
      s.engine,
      ...timingCells(s),
      fixed(s.medianFsyncSeconds),
      s.mbPerSecondWithFsync === null ? '' : Math.round(s.mbPerSecondWithFsync).toString(),
      fixed(s.medianCpuSeconds),
      fixed(s.cpuSecondsPerGb),
      s.maxRssKiB === null ? '' : Math.round(s.maxRssKiB / 1024).toString(),
    ]),
  )
  const transferFailures = t.runs.filter((r) => !r.ok).map((r) => `- ${r.engine} run ${r.run} failed: ${r.error}`)
  const posixMissing = whyNotMeasured(report, 'posix')
  const uringMissing = whyNotMeasured(report, 'uring')
  const loadedPlugins = report.plugins.filter((p) => p.module !== null).map((p) => p.specifier)
  const targetLines = posixMissing
    ? [`- not measured: the posix engine is ${posixMissing}`]
    : report.tools.fio === null
      ? ['- not measured: fio missing (apt-get install fio)']
      : report.targets.map((x) => {
          const c = report.cases.find((y) => y.id === x.case)
          const buffered = c?.direct && c.stats.find((s) => s.tool === 'posix')?.oDirect === false ? ' (posix held no O_DIRECT descriptor on the file)' : ''
          const fastest = x.fastestFio && x.posixShareOfFastest !== null ? `; ${x.fastestFio} was faster here, and posix made ${Math.round(x.posixShareOfFastest * 100)}% of it` : ''
          return `- ${x.case}, posix ≥ ${TARGET_SHARE * 100}% of ${x.fioReference}: ${x.posixShare === null ? 'not measured' : `${Math.round(x.posixShare * 100)}%, **${x.met ? 'met' : 'not met'}**${buffered}${fastest}`}`
        })
  const uringTargetLines =
    uringMissing || posixMissing
      ? [`- not measured: ${uringMissing ? `uring: ${uringMissing}` : `posix: ${posixMissing}`}`]
      : report.uringTargets.map((x) => {
          const rule = x.measure === 'throughput' ? `uring ≥ ${x.bound === 1 ? '' : `${x.bound}× `}posix's GB/s` : "uring's CPU per GB < posix's"
          const buffered = x.buffered.length ? ` (${x.buffered.join(' and ')} held no O_DIRECT descriptor on the file)` : ''
          return `- ${x.case}, ${rule}: ${x.ratio === null ? 'not measured' : `${x.ratio.toFixed(2)}×, **${x.met ? 'met' : 'not met'}**${buffered}${beyondDisk(report, x)}`}`
        })
  const quietWaited = Math.round([...report.cases.flatMap((c) => c.runs), ...t.runs].reduce((s, r) => s + r.quiet.waitedSeconds, 0))
  return [
    `## ${SUITE}`,
    '',
    `Measured ${report.date} by \`npm run bench -- ${SUITE}\` in ${Math.round(report.durationSeconds / 60)} min; data: \`${jsonFile}\`.`,
    '',
    machineLine(machine),
    `- Node ${machine.node}; ${report.tools.fio ?? 'fio missing (apt-get install fio), so no fio rows'}; ${report.tools.dd ?? 'dd missing'}`,
    loadLine(report),
    sourceLine(report.source),
    `- Files in \`${method.dir}\` (${method.fileSystem}): one of ${sizeText(method.sizeBytes)} of random bytes that every tool reads, new files beside it for the writes; the copy's source \`${t.dataset.path}\` (${sizeText(t.dataset.bytes)}) and its copies on the same disk.`,
    `- Engines: ${[
      ...report.engines.map((e) => `${e.name} (${e.plugin})${e.available ? '' : `: not measured, ${e.reason}`}`),
      ...report.plugins.flatMap((p) => (p.problem ? [`${p.engine}: not measured, ${p.problem}`] : [])),
    ].join('; ')}`,
    '',
    `${method.runs} run${method.runs > 1 ? 's' : ''} of each tool per case, the tools taking turns. GB/s is 10^9 bytes per second over the I/O alone, as the tool timed it (engines: from the open to the last close, in \`bench/lib/engine-io.cjs\`; fio: its job runtime; dd: its "copied, N s"), so no tool's start-up is counted. CPU s/GB is user + system CPU of that same span (engines: the process's CPU, all threads, across it; fio: its usr_cpu + sys_cpu of the job; dd: the whole process, GNU time); peak RSS is GNU time's, of the whole process (an engine's includes Node's).`,
    '',
    '### Engine alone: reads',
    '',
    ioTable('read'),
    '',
    '### Engine alone: writes',
    '',
    ioTable('write'),
    ...(ioFailures.length ? ['', ...ioFailures] : []),
    '',
    `**Targets**: the posix engine at least ${TARGET_SHARE * 100}% of fio's median GB/s with the same block size and mode.`,
    '',
    ...targetLines,
    '',
    `**uring targets**: the uring engine against posix, medians of this run: at least posix's GB/s in the four ${sizeText(MIB)} cases, at least ${URING_THROUGHPUT_TARGETS.filter((x) => x.atLeast !== 1).map((x) => `${x.atLeast}× posix's in ${caseId(x.op, x.blockBytes, x.direct)}`).join(', ')}, and less CPU per GB in each case and over all of them (the sum of each engine's CPU s/GB, every case moving the same bytes).`,
    '',
    ...uringTargetLines,
    '',
    `### A ${sizeText(t.dataset.bytes)} copy with each engine`,
    '',
    transferTable,
    ...(transferFailures.length ? ['', ...transferFailures] : []),
    '',
    copyRatioLine('posix ÷ node-fs', t.posixVsNodeFs, posixMissing && `posix: ${posixMissing}`),
    '',
    copyRatioLine('uring ÷ posix', t.uringVsPosix, (uringMissing && `uring: ${uringMissing}`) || (posixMissing && `posix: ${posixMissing}`)),
    '',
    'How each tool ran and what its figures cover:',
    '',
    `- **Engines** (node-fs, posix, uring when registered and available): \`node bench/lib/engine-io.cjs JOB\` loads the plugins as escp does (the built-ins${loadedPlugins.length ? ` plus ${loadedPlugins.join(' and ')}` : ''}, in every engine's process), resolves the engine by name and drives it through the IoEngine contract: \`createBufferPool(block, ${method.queueDepth})\`, then \`openRead(path, {direct})\` and \`read(buf, offset)\`, or \`openWrite(path, {direct, sizeBytes})\`, \`write(buf, offset)\`, \`truncate(size)\`, \`finish()\`, with ${method.queueDepth} reads or writes in flight on the one handle, in order of offset. posix runs each read or write on its own I/O threads; uring puts them in the JavaScript thread's ring (the plugin's default depth, 64), hands each turn of the event loop's batch to the kernel with one \`io_uring_enter\`, into buffers registered with the ring, and reaps the completions on the event loop; it opens, preallocates, truncates and closes files as posix does. Buffered writes of posix and uring go uncached (\`RWF_DONTCACHE\`, Linux 6.14: written back at once, dropped from the page cache once clean) where the file system takes it; node-fs, fio and dd write through the cache. Writes send random bytes made before the clock starts, and end with an fsync of the file (the contract leaves flushing to the engine) inside the timed span. O_DIRECT says whether the descriptors the engine held on the file had the flag (read from /proc/self/fdinfo): node-fs has no O_DIRECT, so its O_DIRECT rows are buffered I/O. UV_THREADPOOL_SIZE: ${method.uvThreadpoolSize ?? "unset (libuv's 4 threads)"}.`,
    `- **fio**: \`fio --rw=read|write --bs=B --size=S --ioengine=E --iodepth=D --direct=0|1\`, one job, one file; writes with \`--end_fsync=1 --fallocate=none\` (a new file, as the others write; fio would otherwise preallocate it outside its runtime), reads with fio's cache invalidation. psync iodepth 1 runs every case; libaio iodepth ${method.queueDepth} and io_uring iodepth ${4 * method.queueDepth} (the disk's ceiling, no target's reference) run the O_DIRECT cases. The reference (÷ fio reference) is libaio iodepth ${method.queueDepth} for O_DIRECT, the same ${method.queueDepth} in flight as the engines, and psync for buffered I/O, where libaio completes each I/O before returning and the page cache's read-ahead and write-back keep the disk busy behind one I/O at a time.`,
    '- **dd**: `dd if=FILE of=/dev/null bs=B [iflag=direct]`, `dd if=/dev/zero of=FILE bs=B count=N conv=fsync [oflag=direct]` (its CPU includes reading /dev/zero).',
    `- **Page cache**: before every read (and every copy) the file was dropped from the page cache (${dropMethods.join(', ') || 'no reads'}: \`dd iflag=nocache count=0\`, posix_fadvise DONTNEED on that file alone, then \`/proc/sys/vm/drop_caches\` if fincore still found pages and the suite runs as root); fincore then found ${cached.length ? `at most ${Math.max(...cached)} bytes of it cached` : 'nothing (fincore missing: reads may have been cached)'}. Writes: \`sync\` before each (not timed), so earlier writes are not flushed during it; each written file is removed after its run.`,
    `- **Copy**: escp's \`copy({sources: [SRC], destination: DST, options: {engine: E}})\` in loopback mode with the engine on both sides (uring: a ring in each stream worker), the same plugins loaded as for the engine rows, and defaults otherwise (O_DIRECT asked for, which node-fs ignores), run by \`bench/lib/escp-copy.cjs\` as the transfer suite runs it; s and CPU s are GNU time's, of the whole process tree (both Node start-ups included). node-fs's receiver writes through the page cache and does not fsync, so its copy can return with data still to write: "fsync after" is an fsync of the copy right after copy() returned, and "MB/s with fsync" counts it. Every copy is checked against the source's sha256.`,
    `- Before each run the suite waited for a second with at most ${QUIET_BUSY_PERCENT}% of the CPUs busy, up to ${QUIET_WAIT_MS / 1000} s (waited ${quietWaited} s in all).`,
  ].join('\n')
}

/**
 * For a throughput target not met whose bound × posix's GB/s is above every tool's median in
 * the case (fio at four times the engines' depth among them): the disk, not the engine, is what
 * stands in the way.
 */
function beyondDisk(report: EnginesReport, x: UringTarget): string {
  const posix = report.cases.find((c) => c.id === x.case)?.stats.find((s) => s.tool === 'posix')?.medianGbPerSecond ?? null
  if (x.met !== false || x.measure !== 'throughput' || !x.fastest || posix === null) return ''
  const asked = x.bound * posix
  if (asked <= x.fastest.gbPerSecond) return ''
  return `; beyond this disk: ${x.bound}× posix's ${posix.toFixed(2)} GB/s is ${asked.toFixed(2)} GB/s, more than any tool's median in this case (the fastest: ${x.fastest.tool}, ${x.fastest.gbPerSecond.toFixed(2)} GB/s)`
}

/** Why an engine has no rows: its plugin's problem, or its availability; null when it was measured. */
function whyNotMeasured(report: EnginesReport, engine: string): string | null {
  const problem = report.plugins.find((p) => p.engine === engine)?.problem
  if (problem) return problem
  const entry = report.engines.find((e) => e.name === engine)
  if (!entry) return 'not registered'
  return entry.available ? null : `unavailable here: ${entry.reason}`
}

function copyRatioLine(label: string, ratio: CopyRatio | null, missing: string | null): string {
  return ratio
    ? `${label}: ${ratio.throughput.toFixed(2)}× the MB/s (${ratio.throughputWithFsync.toFixed(2)}× counting the fsync after), ${ratio.cpuPerGb.toFixed(2)}× the CPU per GB.`
    : `${label}: not measured (${missing ?? 'no successful runs of both'}).`
}

// ---- small helpers ----

function caseId(op: Op, blockBytes: number, direct: boolean): string {
  return `${op} ${sizeText(blockBytes)} ${direct ? 'O_DIRECT' : 'buffered'}`
}

function sizeOption(name: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback
  const m = /^(\d+)\s*([KMGT]?)(?:i?B)?$/i.exec(text.trim())
  const bytes = m ? Number(m[1]) * 1024 ** ' KMGT'.indexOf((m[2] || ' ').toUpperCase()) : NaN
  if (!Number.isSafeInteger(bytes) || bytes < MIB || bytes % MIB !== 0) {
    throw new UsageError(`${SUITE}: --${name} takes a size in whole MiB such as 64M or 1G (K, M, G, T are powers of 1024), got '${text}'`)
  }
  return bytes
}

/** For file names: 64 MiB → '64MiB', 2^30 → '1GiB' (the transfer suite's 'random-2GiB.bin'). */
function sizeName(bytes: number): string {
  return bytes % GIB === 0 ? `${bytes / GIB}GiB` : bytes % MIB === 0 ? `${bytes / MIB}MiB` : `${bytes / 1024}KiB`
}

/** For people: '64 KiB', '1 GiB'. */
function sizeText(bytes: number): string {
  return sizeName(bytes).replace(/(\d)([KMG])/, '$1 $2')
}

function rate(x: number | null): string {
  return x === null ? '' : formatRate(x)
}

function progress(line: string): void {
  process.stderr.write(`${line}\n`)
}
