// An application's data sent without touching disk on the sending side, against the same data
// written to a file first, in the same run (engine-shm issue, point 6). shm: the example C
// producer (packages/engine-shm/examples/producer.c) fills a region while `escp --ioengine
// shm::posix` sends its stream to a file. write-then-send: bench/lib/file-producer.c writes
// the same bytes to a file on the destination's disk, then `escp` (engine auto, posix) sends
// that file. Both are timed from the producer's start to escp's exit, with the CPU of producer
// and escp, and every copy is checked against the producer's SHA-256.
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { loopbackStreams } from '@escp/core'
import { ShmRegion } from '@escp/engine-shm'
import { integerOption, parseSuiteArgs } from '../lib/args'
import { sha256File } from '../lib/datasets'
import { describeMachine, fileSystemName, loadLine, machineLine, startRun, waitForQuiet } from '../lib/machine'
import type { MachineInfo, QuietWait, RunConditions } from '../lib/machine'
import { publishResults } from '../lib/results'
import { median } from '../lib/stats'
import { formatRate, markdownTable } from '../lib/table'
import { withTeardown } from '../lib/teardown'
import { startTimed, tail } from '../lib/timed-command'
import type { TimedResult } from '../lib/timed-command'

const execFileP = promisify(execFile)

const SUITE = 'shm'
const DEFAULT_SIZE_MIB = 1024
const DEFAULT_RUNS = 3
/** escp's default block size: the region's must be the transfer's. */
const BLOCK_BYTES = 2 ** 20
/**
 * Blocks the producer may be ahead of escp. escp asks for blocks a few per stream ahead and
 * out of order across streams; 64 MiB covers that with room to spare.
 */
const DEFAULT_SLOTS = 64
const STREAM = 'data.bin'
/** Longest wait for neighbours' work to calm down before a measurement. */
const QUIET_WAIT_MS = 10_000
const ESCP_CLI = path.resolve(__dirname, '..', '..', 'packages', 'cli', 'bin', 'run.js')
const SHM_PACKAGE = path.resolve(__dirname, '..', '..', 'packages', 'engine-shm')
const FILE_PRODUCER_C = path.resolve(__dirname, '..', 'lib', 'file-producer.c')
const CFLAGS = ['-O2', '-std=c11', '-Wall', '-Wextra']

type PathId = 'shm' | 'write-then-send'
const PATHS: readonly PathId[] = ['shm', 'write-then-send']

export const usage = [
  `  --size MIB   bytes the producer makes, in MiB (default ${DEFAULT_SIZE_MIB})`,
  `  --runs N     runs of each path (default ${DEFAULT_RUNS})`,
  `  --slots N    slots of the region, ${BLOCK_BYTES / 2 ** 20} MiB each (default ${DEFAULT_SLOTS})`,
  `  --dir DIR    where the written file and both copies go, one disk for all (default ${os.tmpdir()})`,
].join('\n')

/** One process of a run, as GNU time saw it; wall time from the suite's clock. */
interface StepRecord {
  command: string
  exitCode: number | null
  wallSeconds: number
  cpuSeconds: number
  userSeconds: number
  systemSeconds: number
  maxRssKiB: number
}

interface RunRecord {
  path: PathId
  run: number
  ok: boolean
  error?: string
  /** From the producer's start to escp's exit. */
  wallSeconds: number
  /** Producer + escp (its process tree: the loopback receiver included). */
  cpuSeconds: number
  producer: StepRecord
  escp: StepRecord | null
  /** The copy's SHA-256, and the one the producer printed. */
  sha256: string | null
  producerSha256: string | null
  quiet: QuietWait
}

interface Summary {
  runsOk: number
  medianSeconds: number | null
  minSeconds: number | null
  maxSeconds: number | null
  mbPerSecond: number | null
  medianCpuSeconds: number | null
}

interface PathStats extends Summary {
  path: PathId
  medianProducerCpuSeconds: number | null
  medianEscpCpuSeconds: number | null
  /** write-then-send only: its two steps on their own. */
  steps?: { producer: Summary; escp: Summary }
}

interface ShmReport {
  suite: typeof SUITE
  machine: MachineInfo
  conditions: RunConditions
  method: {
    bytes: number
    runs: number
    blockSizeBytes: number
    slotCount: number
    loopbackStreams: number
    fileSystem: string
    compiler: string
    producerSha256: string | null
  }
  runs: RunRecord[]
  stats: PathStats[]
  target: { text: string; shmSeconds: number | null; writeThenSendSeconds: number | null; speedup: number | null; met: boolean | null }
}

const nowNs = () => process.hrtime.bigint()
const seconds = (from: bigint, to: bigint) => Number(to - from) / 1e9

/** Runs a command under GNU time and notes when it ended on the suite's clock. */
function timedStep(file: string, args: readonly string[], options: { env?: NodeJS.ProcessEnv; timeoutMs: number }) {
  const started = nowNs()
  const p = startTimed(file, args, options)
  return { process: p, done: p.done.then((result) => ({ result, wallSeconds: seconds(started, nowNs()) })) }
}

function stepRecord(r: TimedResult, wallSeconds: number): StepRecord {
  return {
    command: r.command,
    exitCode: r.exitCode,
    wallSeconds,
    cpuSeconds: r.userSeconds + r.systemSeconds,
    userSeconds: r.userSeconds,
    systemSeconds: r.systemSeconds,
    maxRssKiB: r.maxRssKiB,
  }
}

/** What went wrong with a step, or null when it exited 0. */
function failure(what: string, r: TimedResult): string | null {
  if (r.timedOut) return `${what} timed out`
  if (r.exitCode !== 0) return `${what} exited ${r.exitCode}: ${tail(r.stderr)}`
  return null
}

function printedDigest(stdout: string): string | null {
  return /^sha256 ([0-9a-f]{64}) bytes \d+$/m.exec(stdout)?.[1] ?? null
}

/** Compiles a C program with gcc; the example producer links the library's one source file. */
async function compile(out: string, sources: string[]): Promise<void> {
  try {
    await execFileP('gcc', [...CFLAGS, '-I', path.join(SHM_PACKAGE, 'include'), '-I', path.join(SHM_PACKAGE, 'examples'), ...sources, '-o', out])
  } catch (err) {
    const e = err as Error & { code?: string; stderr?: string }
    throw new Error(e.code === 'ENOENT' ? 'gcc is missing; the suite compiles the C producers with it (apt-get install gcc)' : `could not compile ${path.basename(out)}: ${(e.stderr ?? e.message).trim()}`)
  }
}

interface Setup {
  bytes: number
  slots: number
  workDir: string
  producer: string
  fileProducer: string
  timeoutMs: number
  env: NodeJS.ProcessEnv
  /** The open region of the run under way, closed (and so removed) by teardown if the run fails. */
  region: { current: ShmRegion | null }
}

async function verify(copy: string, expected: string | null): Promise<{ sha256: string | null; error: string | null }> {
  if (!fs.existsSync(copy)) return { sha256: null, error: `${copy} was not written` }
  const sha256 = await sha256File(copy)
  if (expected === null) return { sha256, error: 'the producer printed no digest' }
  return { sha256, error: sha256 === expected ? null : `the copy's sha256 ${sha256} is not the producer's ${expected}` }
}

async function runShm(s: Setup, run: number, quiet: QuietWait): Promise<RunRecord> {
  const name = `bench-shm-${process.pid}-${run}`
  const dest = path.join(s.workDir, `shm-${run}`)
  fs.mkdirSync(dest)
  // Made before the clock starts, as an application makes its region once; the producer and
  // escp open it, so escp need not race the producer to its creation.
  const region = await ShmRegion.create(name, { blockSizeBytes: BLOCK_BYTES, slotCount: s.slots })
  s.region.current = region
  try {
    const started = nowNs()
    const producer = timedStep(s.producer, [name, STREAM, String(s.bytes)], { timeoutMs: s.timeoutMs })
    const escp = timedStep(process.execPath, [ESCP_CLI, '--ioengine', 'shm::posix', `/dev/shm/escp-${name}/${STREAM}`, `${dest}/`], { env: s.env, timeoutMs: s.timeoutMs })
    const escpDone = escp.done.then((d) => ({ ...d, ended: nowNs() }))
    // A producer whose consumer never attached would wait for a slot until its timeout.
    void escpDone.then((d) => d.result.exitCode !== 0 && producer.process.kill())
    const [p, e] = await Promise.all([producer.done, escpDone])
    const producerSha256 = printedDigest(p.result.stdout)
    const producerStep = stepRecord(p.result, p.wallSeconds)
    const escpStep = stepRecord(e.result, e.wallSeconds)
    let error = failure('escp', e.result) ?? failure('the producer', p.result)
    let sha256: string | null = null
    if (!error) ({ sha256, error } = await verify(path.join(dest, STREAM), producerSha256))
    return {
      path: 'shm',
      run,
      ok: error === null,
      ...(error ? { error } : {}),
      wallSeconds: seconds(started, e.ended),
      cpuSeconds: producerStep.cpuSeconds + escpStep.cpuSeconds,
      producer: producerStep,
      escp: escpStep,
      sha256,
      producerSha256,
      quiet,
    }
  } finally {
    region.close()
    s.region.current = null
    fs.rmSync(dest, { recursive: true, force: true })
  }
}

async function runWriteThenSend(s: Setup, run: number, quiet: QuietWait): Promise<RunRecord> {
  const srcDir = path.join(s.workDir, `written-${run}`)
  const dest = path.join(s.workDir, `sent-${run}`)
  const src = path.join(srcDir, STREAM)
  fs.mkdirSync(srcDir)
  fs.mkdirSync(dest)
  try {
    const p = await timedStep(s.fileProducer, [src, String(s.bytes)], { timeoutMs: s.timeoutMs }).done
    const producerSha256 = printedDigest(p.result.stdout)
    const producerStep = stepRecord(p.result, p.wallSeconds)
    const base = { path: 'write-then-send' as const, run, producer: producerStep, producerSha256, quiet }
    const producerError = failure('the file producer', p.result)
    if (producerError) return { ...base, ok: false, error: producerError, wallSeconds: p.wallSeconds, cpuSeconds: producerStep.cpuSeconds, escp: null, sha256: null }
    const e = await timedStep(process.execPath, [ESCP_CLI, src, `${dest}/`], { env: s.env, timeoutMs: s.timeoutMs }).done
    const escpStep = stepRecord(e.result, e.wallSeconds)
    let error = failure('escp', e.result)
    let sha256: string | null = null
    if (!error) ({ sha256, error } = await verify(path.join(dest, STREAM), producerSha256))
    return {
      ...base,
      ok: error === null,
      ...(error ? { error } : {}),
      // The gap between the two steps is the suite's, a few milliseconds; a script would have it too.
      wallSeconds: p.wallSeconds + e.wallSeconds,
      cpuSeconds: producerStep.cpuSeconds + escpStep.cpuSeconds,
      escp: escpStep,
      sha256,
    }
  } finally {
    fs.rmSync(srcDir, { recursive: true, force: true })
    fs.rmSync(dest, { recursive: true, force: true })
  }
}

function summary(walls: number[], cpus: number[], bytes: number): Summary {
  const m = median(walls)
  return {
    runsOk: walls.length,
    medianSeconds: m,
    minSeconds: walls.length ? Math.min(...walls) : null,
    maxSeconds: walls.length ? Math.max(...walls) : null,
    mbPerSecond: m ? bytes / 1e6 / m : null,
    medianCpuSeconds: median(cpus),
  }
}

function statsOf(records: readonly RunRecord[], bytes: number): PathStats[] {
  return PATHS.map((id) => {
    const ok = records.filter((r) => r.path === id && r.ok)
    const stats: PathStats = {
      path: id,
      ...summary(
        ok.map((r) => r.wallSeconds),
        ok.map((r) => r.cpuSeconds),
        bytes,
      ),
      medianProducerCpuSeconds: median(ok.map((r) => r.producer.cpuSeconds)),
      medianEscpCpuSeconds: median(ok.map((r) => r.escp?.cpuSeconds ?? 0)),
    }
    if (id === 'write-then-send') {
      stats.steps = {
        producer: summary(
          ok.map((r) => r.producer.wallSeconds),
          ok.map((r) => r.producer.cpuSeconds),
          bytes,
        ),
        escp: summary(
          ok.map((r) => r.escp?.wallSeconds ?? 0),
          ok.map((r) => r.escp?.cpuSeconds ?? 0),
          bytes,
        ),
      }
    }
    return stats
  })
}

export async function run(args: readonly string[] = []): Promise<void> {
  const opts = parseSuiteArgs(SUITE, args, { size: { type: 'string' }, runs: { type: 'string' }, slots: { type: 'string' }, dir: { type: 'string' } })
  const sizeMiB = integerOption(SUITE, 'size', opts.size, DEFAULT_SIZE_MIB)
  const runs = integerOption(SUITE, 'runs', opts.runs, DEFAULT_RUNS)
  const slots = integerOption(SUITE, 'slots', opts.slots, DEFAULT_SLOTS)
  const baseDir = path.resolve(opts.dir ?? os.tmpdir())
  const bytes = sizeMiB * 2 ** 20
  const clock = startRun()
  const machine = describeMachine()

  await withTeardown(async (teardown) => {
    const workDir = fs.mkdtempSync(path.join(baseDir, 'escp-bench-shm-'))
    teardown.add(`remove ${workDir}`, () => fs.rmSync(workDir, { recursive: true, force: true }))
    const region: Setup['region'] = { current: null }
    teardown.add('close the region', () => region.current?.close())
    const producer = path.join(workDir, 'producer')
    const fileProducer = path.join(workDir, 'file-producer')
    await compile(producer, [path.join(SHM_PACKAGE, 'examples', 'producer.c'), path.join(SHM_PACKAGE, 'src', 'escp_shm.c')])
    await compile(fileProducer, [FILE_PRODUCER_C])
    const compiler = (await execFileP('gcc', ['--version'])).stdout.split('\n')[0]
    const fileSystem = fileSystemName(workDir)
    const setup: Setup = {
      bytes,
      slots,
      workDir,
      producer,
      fileProducer,
      // Generous: a run that takes this long (3 MB/s and up) is broken, not slow.
      timeoutMs: 120_000 + sizeMiB * 300,
      env: { ...process.env, ESCP_CONFIG: '/dev/null' },
      region,
    }
    console.log(`${sizeMiB} MiB, ${runs} run${runs === 1 ? '' : 's'} of each path; region of ${slots} × ${BLOCK_BYTES / 2 ** 20} MiB slots; files on ${fileSystem} in ${workDir}`)

    const records: RunRecord[] = []
    for (let r = 1; r <= runs; r++) {
      // Each round starts with the other path, so neither always runs first.
      const order = r % 2 === 1 ? PATHS : [...PATHS].reverse()
      for (const id of order) {
        // Dirty pages of the previous run would be written back during this one.
        await execFileP('sync')
        const quiet = await waitForQuiet(QUIET_WAIT_MS)
        const rec = id === 'shm' ? await runShm(setup, r, quiet) : await runWriteThenSend(setup, r, quiet)
        records.push(rec)
        const steps = rec.path === 'write-then-send' && rec.escp ? ` (write ${rec.producer.wallSeconds.toFixed(2)} s + send ${rec.escp.wallSeconds.toFixed(2)} s)` : ''
        console.log(`  ${id} run ${r}: ${rec.ok ? `${rec.wallSeconds.toFixed(2)} s${steps}, ${rec.cpuSeconds.toFixed(2)} CPU s` : `FAILED: ${rec.error}`}`)
      }
    }

    const stats = statsOf(records, bytes)
    const shm = stats.find((x) => x.path === 'shm')?.medianSeconds ?? null
    const wts = stats.find((x) => x.path === 'write-then-send')?.medianSeconds ?? null
    const digests = [...new Set(records.map((r) => r.producerSha256).filter((d) => d !== null))]
    const report: ShmReport = {
      suite: SUITE,
      machine,
      conditions: clock.finish(),
      method: {
        bytes,
        runs,
        blockSizeBytes: BLOCK_BYTES,
        slotCount: slots,
        loopbackStreams: loopbackStreams(),
        fileSystem,
        compiler,
        producerSha256: digests.length === 1 ? digests[0] : null,
      },
      runs: records,
      stats,
      target: {
        text: 'the shm path beats write-then-send',
        shmSeconds: shm,
        writeThenSendSeconds: wts,
        speedup: shm && wts ? wts / shm : null,
        met: shm === null || wts === null ? null : shm < wts,
      },
    }
    publishResults(SUITE, clock.startedAt, report, renderSection)
  })
}

const TITLES: Record<PathId, string> = {
  shm: 'shm: producer → region → `escp --ioengine shm::posix` → file',
  'write-then-send': 'write-then-send: producer → file, then `escp` → file',
}

const s2 = (x: number | null) => (x === null ? '-' : x.toFixed(2))

export function renderSection(report: ShmReport, jsonFile: string): string {
  const m = report.method
  const row = (title: string, x: Summary, producerCpu: number | null, escpCpu: number | null) => [
    title,
    `${x.runsOk}/${m.runs}`,
    s2(x.medianSeconds),
    s2(x.minSeconds),
    s2(x.maxSeconds),
    x.mbPerSecond === null ? '-' : formatRate(x.mbPerSecond),
    s2(producerCpu),
    s2(escpCpu),
    s2(x.medianCpuSeconds),
  ]
  const rows = report.stats.flatMap((x) => [
    row(TITLES[x.path], x, x.medianProducerCpuSeconds, x.medianEscpCpuSeconds),
    ...(x.steps ? [row('… of it, the producer writing the file', x.steps.producer, x.steps.producer.medianCpuSeconds, null), row('… of it, escp sending the file', x.steps.escp, null, x.steps.escp.medianCpuSeconds)] : []),
  ])
  const t = report.target
  const sendAlone = report.stats.find((x) => x.path === 'write-then-send')?.steps?.escp.mbPerSecond ?? null
  const shmRate = report.stats.find((x) => x.path === 'shm')?.mbPerSecond ?? null
  const failures = report.runs.filter((r) => !r.ok)
  const mib = m.bytes / 2 ** 20
  return [
    '## Producer → escp without the disk (engine-shm)',
    '',
    `Measured ${report.conditions.date} by \`npm run bench -- ${SUITE}\`; data: \`${jsonFile}\`.`,
    '',
    `${mib >= 1024 ? `${mib / 1024} GiB` : `${mib} MiB`} made by a producer and copied to a file on ${m.fileSystem}, in loopback mode; ${m.runs} run${m.runs === 1 ? '' : 's'} of each path, alternating which goes first. MB/s is 10⁶ bytes per second of wall time.`,
    '',
    markdownTable(
      [
        { header: 'path' },
        { header: 'runs ok' },
        { header: 'median s', align: 'right' },
        { header: 'min s', align: 'right' },
        { header: 'max s', align: 'right' },
        { header: 'MB/s', align: 'right' },
        { header: 'producer CPU s', align: 'right' },
        { header: 'escp CPU s', align: 'right' },
        { header: 'CPU s', align: 'right' },
      ],
      rows,
    ),
    '',
    `**Target**: ${t.text}: ${t.met === null ? 'not measured' : `${s2(t.shmSeconds)} s against ${s2(t.writeThenSendSeconds)} s (${t.speedup?.toFixed(2)}×), **${t.met ? 'met' : 'not met'}**`}.`,
    `For comparison (no target here): the shm path's ${shmRate === null ? '-' : formatRate(shmRate)} MB/s against ${sendAlone === null ? '-' : formatRate(sendAlone)} MB/s for escp sending the already written file on its own.`,
    ...(failures.length ? ['', ...failures.map((r) => `- Failed: ${r.path} run ${r.run}: ${r.error}`)] : []),
    '',
    `- Producer: \`packages/engine-shm/examples/producer.c\` (splitmix64 words from seed 1, SHA-256 as it goes), opening a region the suite creates before the clock starts (${m.blockSizeBytes / 2 ** 20} MiB blocks, escp's, and ${m.slotCount} slots); escp is started with it and attaches to its stream. The write-then-send producer, \`bench/lib/file-producer.c\`, makes the same bytes (the same SHA-256: ${m.producerSha256 ?? 'the runs disagree'}) and write(2)s them 1 MiB at a time without fsync. Both built by the suite with ${m.compiler}, \`-O2\`.`,
    `- Times: shm from the producer's start to escp's exit; write-then-send the producer's run plus escp's. CPU: user + system of each process tree from GNU time (escp's includes its loopback receiver; ${m.loopbackStreams} stream${m.loopbackStreams === 1 ? '' : 's'} here). The written file and both copies are on one disk; \`sync\` and a wait for a quiet machine (at most ${QUIET_WAIT_MS / 1000} s) before each run. Every copy is checked against the producer's SHA-256.`,
    machineLine(report.machine),
    loadLine(report.conditions),
  ].join('\n')
}
