// Whole copies on this machine, escp beside the tools people use instead, in the same run:
// cp, scp (its default cipher, and aes128-gcm) and rsync over ssh through a private sshd on
// 127.0.0.1; escp in loopback mode through the library (copy(), default options), and the escp
// command pushing through the same sshd to `escp server` (escp-ssh). Four datasets: one 2 GiB
// file of random bytes; 10,000 small files of 1-64 KiB, which also go to a tmpfs, where file
// creation on ext4 no longer dominates; a 1 GiB log-like text file, also copied by escp with
// zstd; a 4 GiB sparse file with 10% data. Every copy is verified by content hash.
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { UsageError, integerOption, parseSuiteArgs } from '../lib/args'
import { updateChart } from '../lib/chart'
import { allocatedBytes, ensureBigFile, ensureLogFile, ensureSmallTree, ensureSparseFile, sha256File, treeDigest } from '../lib/datasets'
import type { Dataset } from '../lib/datasets'
import { SHIPPED_PLUGINS, runEscpCopy } from '../lib/escp-run'
import { AUTO_ENGINE, DEFAULT_OPTIONS, V8_FLAGS, loadPlugins, loopbackStreams, pluginsFromEnv } from '@escp/core'
import { QUIET_BUSY_PERCENT, busySeconds, describeMachine, fileSystemName, loadLine, machineLine, readCpuTimes, startRun, waitForQuiet } from '../lib/machine'
import type { MachineInfo, QuietWait, RunConditions } from '../lib/machine'
import { ThreadSampler } from '../lib/proc'
import type { ProcessProfile } from '../lib/proc'
import { publishResults, repoPath } from '../lib/results'
import { startBenchSshd } from '../lib/sshd'
import type { BenchSshd } from '../lib/sshd'
import { sourceLine, sourceState } from '../lib/source-state'
import type { SourceState } from '../lib/source-state'
import { median, timingStats } from '../lib/stats'
import type { TimingStats } from '../lib/stats'
import { TIMING_COLUMNS, fixed, markdownTable, profileTable, timingCells } from '../lib/table'
import { withTeardown } from '../lib/teardown'
import { GNU_TIME, runTimed, startTimed, tail } from '../lib/timed-command'
import type { TimedResult } from '../lib/timed-command'

const execFileP = promisify(execFile)

const SUITE = 'transfer'
const DEFAULT_RUNS = 3
const DEFAULT_DATA_DIR = path.resolve(__dirname, '..', 'data')
/** The escp command of this repository, run by escp-ssh on both ends (-D for the remote one). */
const ESCP_CLI = path.resolve(__dirname, '..', '..', 'packages', 'cli', 'bin', 'run.js')
/** The issue's datasets; --file-mib, --small-files, --log-mib and --sparse-mib make smaller ones for a quick run. */
const DEFAULT_FILE_MIB = 2048
const DEFAULT_SMALL_FILES = 10_000
const DEFAULT_LOG_MIB = 1024
const DEFAULT_SPARSE_MIB = 4096
const SMALL_FILE = { minBytes: 1024, maxBytes: 64 * 1024, filesPerDir: 100 }
/** The issue's "10% data": 1 MiB extents of random bytes spread evenly, holes between them. */
const SPARSE = { extentBytes: 2 ** 20, dataFraction: 0.1 }
/** Longest wait for neighbours' work to calm down before a run (short: 96 runs by default). */
const QUIET_WAIT_MS = 10_000
const SCP_CIPHER = 'aes128-gcm@openssh.com'
/** Room for the small-files tree (about 330 MB) in the tmpfs. */
const TMPFS_SIZE = '1g'
/**
 * The issue's targets: escp's median time (loopback, the library) at least this many times
 * shorter than the peer's. escp-ssh's ratio to the same peer is reported beside each, as
 * information: the targets were set for the loopback row.
 */
const TARGETS = [
  { cell: 'big-file', peer: 'scp', factor: 2, text: 'the 2 GiB file at least 2× as fast as scp with aes128-gcm', against: 'the 2 GiB file against scp with aes128-gcm' },
  { cell: 'small-files-tmpfs', peer: 'rsync', factor: 2, text: '10,000 small files into tmpfs at least 2× as fast as rsync over ssh', against: '10,000 small files into tmpfs against rsync over ssh' },
  // On ext4, creating the files costs seconds of kernel time even for cp -r: within 1.5× its time.
  { cell: 'small-files-ext4', peer: 'cp', factor: 1 / 1.5, text: '10,000 small files into ext4 within 1.5× the time of `cp -r` (at least 0.67× as fast)', against: '10,000 small files into ext4 against `cp -r`' },
] as const

/** scp is the aes128-gcm row (the targets' peer), scp-default the same with ssh's default cipher. */
type Tool = 'cp' | 'tar' | 'scp' | 'scp-default' | 'rsync' | 'escp' | 'escp-zstd' | 'escp-ssh' | 'escp-ssh-zstd'
const TOOLS: readonly Tool[] = ['cp', 'tar', 'scp', 'scp-default', 'rsync', 'escp', 'escp-zstd', 'escp-ssh', 'escp-ssh-zstd']
/** The tools that go through the private sshd. */
const SSH_TOOLS: readonly Tool[] = ['scp', 'scp-default', 'rsync', 'escp-ssh', 'escp-ssh-zstd']
/** escp with zstd: only where there is something to compress. */
const COMPRESSING_TOOLS: readonly Tool[] = ['escp-zstd', 'escp-ssh-zstd']
/**
 * `tar c | tar x`, for the trees only: two processes on the two cores, as escp's sender and
 * receiver, with no encryption, network or verification; what a copy of the tree costs here
 * before any of escp's work, beside cp's one process.
 */
const TREE_TOOLS: readonly Tool[] = ['tar']
const TREE_CELLS: readonly CellId[] = ['small-files-ext4', 'small-files-tmpfs']

type CellId = 'big-file' | 'small-files-ext4' | 'small-files-tmpfs' | 'log-file' | 'sparse-file'
const CELLS: readonly CellId[] = ['big-file', 'small-files-ext4', 'small-files-tmpfs', 'log-file', 'sparse-file']

export const usage = [
  `  --runs N          runs of each tool in each case (default ${DEFAULT_RUNS})`,
  `  --data DIR        where the datasets are generated once and then reused (default ${repoPath(DEFAULT_DATA_DIR)}/)`,
  `  --tools LIST      comma-separated subset of ${TOOLS.join(',')} (default all; ${COMPRESSING_TOOLS.join(' and ')} run in log-file only, ${TREE_TOOLS.join(' and ')} in the small-files cells only)`,
  `  --cells LIST      comma-separated subset of ${CELLS.join(',')} (default all); only their datasets are generated`,
  `  --file-mib N      size of the random one-file dataset in MiB (default ${DEFAULT_FILE_MIB}, the issue's 2 GiB)`,
  `  --small-files N   files in the small-files dataset (default ${DEFAULT_SMALL_FILES}, the issue's)`,
  `  --log-mib N       size of the log-like text file in MiB (default ${DEFAULT_LOG_MIB}, the issue's 1 GiB)`,
  `  --sparse-mib N    size of the sparse file in MiB, ${SPARSE.dataFraction * 100}% of it data (default ${DEFAULT_SPARSE_MIB}, the issue's 4 GiB)`,
].join('\n')

interface Cell {
  id: CellId
  title: string
  /** The run's tools that this cell measures. */
  tools: Tool[]
  dataset: Dataset
  /** Where the destination is created; a fresh name under it each run. */
  destinationDir: string
  destinationFs: string
  tree: boolean
  /** The sparse file: cp and rsync are asked to keep holes, and each copy's allocation is recorded. */
  sparse: boolean
  digest: string
  /**
   * Keep every copy until the case ends instead of removing it after its run. ext4 without a
   * journal (this machine's root file system) skips recently freed inodes when it allocates
   * new ones, reading each one to find out (recently_deleted() in ialloc.c): a copy of 10,000
   * files made right after 10,000 were removed can pay for that (cp -r: 0.4 s became 7.9 s).
   * A user's copy does not start by deleting 10,000 files, so the benchmark's do not either.
   */
  removeCopiesAtEnd: boolean
}

interface RunRecord {
  tool: Tool
  run: number
  command: string
  ok: boolean
  error?: string
  wallSeconds: number
  /** User + system of the command's process tree (GNU time) plus, for scp, rsync and escp-ssh, the sshd side. */
  cpuSeconds: number
  clientCpuSeconds: number
  serverCpuSeconds: number | null
  maxRssKiB: number
  /** One-file cells: the copy's st_blocks × 512, the space it took on disk (below its size where it kept holes). */
  allocatedBytes: number | null
  /** CPU seconds the whole machine spent busy during the run, all processes. */
  machineBusySeconds: number | null
  quiet: QuietWait
  /** escp only: the copy() call as measured inside, and where its CPU went. */
  escp?: {
    copyWallSeconds: number | null
    callerCpuSeconds: number | null
    receiverCpuSeconds: number | null
    /** Block payload bytes sent (after compression), and bytes skipped as holes; from copy()'s summary. */
    wireBytes: number | null
    holeBytes: number | null
    threads: (ProcessProfile & { role: string })[]
  }
  /** escp-ssh only: where its CPU went, on the client side and under sshd. */
  escpSsh?: { threads: (ProcessProfile & { role: string })[] }
}

interface ToolStats extends TimingStats {
  tool: Tool
  medianCpuSeconds: number | null
  maxRssKiB: number | null
  /** Median of the copies' allocated bytes (one-file cells). */
  medianAllocatedBytes: number | null
  medianOthersCpuSeconds: number | null
  /** The peer's median time over escp's: above 1, escp was faster. */
  escpSpeedup: number | null
  /** The same over escp-ssh's. */
  escpSshSpeedup: number | null
}

interface CellReport {
  id: CellId
  title: string
  tools: Tool[]
  /** allocatedBytes: the source's st_blocks × 512, for one-file datasets. */
  dataset: { path: string; files: number; bytes: number; allocatedBytes: number | null }
  destinationFs: string
  runs: RunRecord[]
  stats: ToolStats[]
}

interface TransferReport extends RunConditions {
  suite: string
  machine: MachineInfo
  source: SourceState
  tools: Record<string, string>
  method: {
    runs: number
    tools: Tool[]
    cells: CellId[]
    dataDir: string
    fileBytes: number
    smallFiles: number
    logBytes: number
    sparseBytes: number
    datasetsGenerated: boolean
    generateSeconds: number
    scpCipher: string
    /** ssh's default cipher with this sshd: scp-default's, rsync's and escp-ssh's control channel's. Null when no tool of the run went through ssh. */
    rsyncSshCipher: string | null
    glibcTunables: string | null
    /** The engine 'auto' resolved to, for each escp row. */
    engines: { escp: string; escpSsh: string }
  }
  cells: CellReport[]
  targets: { text: string; escpSpeedup: number | null; met: boolean | null }[]
  /** escp-ssh's ratio to each target's peer, for information. */
  escpSshAgainstTargets: { text: string; escpSshSpeedup: number | null }[]
  /**
   * escp's own start-up and end, for scale beside the trees: a one-byte copy() timed as the escp
   * rows are (the process tree, GNU time), before the cells; null when no escp row ran on a tree.
   */
  escpStartup: { seconds: number[]; medianSeconds: number | null } | null
}

export async function run(args: readonly string[] = []): Promise<void> {
  const values = parseSuiteArgs(SUITE, args, {
    runs: { type: 'string' },
    data: { type: 'string' },
    tools: { type: 'string' },
    'file-mib': { type: 'string' },
    'small-files': { type: 'string' },
    'log-mib': { type: 'string' },
    'sparse-mib': { type: 'string' },
    cells: { type: 'string' },
  })
  const runs = integerOption(SUITE, 'runs', values.runs, DEFAULT_RUNS)
  const dataDir = path.resolve(values.data ?? DEFAULT_DATA_DIR)
  const tools = listOption('tools', TOOLS, values.tools)
  const cellIds = listOption('cells', CELLS, values.cells)
  const fileMiB = integerOption(SUITE, 'file-mib', values['file-mib'], DEFAULT_FILE_MIB)
  const smallFiles = integerOption(SUITE, 'small-files', values['small-files'], DEFAULT_SMALL_FILES)
  const logMiB = integerOption(SUITE, 'log-mib', values['log-mib'], DEFAULT_LOG_MIB)
  const sparseMiB = integerOption(SUITE, 'sparse-mib', values['sparse-mib'], DEFAULT_SPARSE_MIB)
  const bigSpec = { name: `random-${sizeName(fileMiB)}.bin`, bytes: fileMiB * 2 ** 20 }
  const smallSpec = { name: `small-${smallFiles}`, files: smallFiles, ...SMALL_FILE }
  const logSpec = { name: `log-${sizeName(logMiB)}.log`, bytes: logMiB * 2 ** 20 }
  const sparseSpec = { name: `sparse-${sizeName(sparseMiB)}.bin`, bytes: sparseMiB * 2 ** 20, ...SPARSE }
  const toolsOf = (cell: CellId) => tools.filter((t) => (cell === 'log-file' || !COMPRESSING_TOOLS.includes(t)) && (TREE_CELLS.includes(cell) || !TREE_TOOLS.includes(t)))
  const runTools = tools.filter((t) => cellIds.some((c) => toolsOf(c).includes(t)))
  if (runTools.length === 0) throw new UsageError(`${SUITE}: ${COMPRESSING_TOOLS.join(' and ')} run in the log-file cell only, and --cells leaves it out`)
  const clock = startRun()
  const machine = describeMachine()
  const source = sourceState()
  const versions = await toolVersions()
  const engines = { escp: await loopbackEngine(), escpSsh: await cliEngine() }
  progress(`transfer: ${runs} run(s) of ${runTools.join(', ')} in ${cellIds.join(', ')}; data in ${dataDir}; ${machine.cpuModel}, ${machine.nproc} cores, Node ${machine.node}`)
  progress(`escp's engine '${AUTO_ENGINE}' is ${engines.escp} for copy(), ${engines.escpSsh} for the escp command`)

  const report = await withTeardown(async (teardown) => {
    fs.mkdirSync(dataDir, { recursive: true })
    const wants = (...ids: CellId[]) => ids.some((id) => cellIds.includes(id))
    const genStart = Date.now()
    const big = wants('big-file') ? ensureBigFile(dataDir, bigSpec) : null
    const small = wants('small-files-ext4', 'small-files-tmpfs') ? ensureSmallTree(dataDir, smallSpec) : null
    const log = wants('log-file') ? ensureLogFile(dataDir, logSpec) : null
    const sparse = wants('sparse-file') ? ensureSparseFile(dataDir, sparseSpec) : null
    const generateSeconds = (Date.now() - genStart) / 1000
    const datasets = [big, small, log, sparse].filter((d) => d !== null)
    const generated = datasets.some((d) => d.generated)
    progress(`datasets ${generated ? `generated in ${generateSeconds.toFixed(0)} s` : 'reused'}: ${datasets.map((d) => `${d.path} (${d.files > 1 ? `${d.files} files, ` : ''}${d.bytes} bytes)`).join(', ')}`)
    // Hashing the sources also puts them in the page cache, where every tool finds them.
    const digestOf = async (d: Dataset | null) => (d === null ? '' : d.files > 1 ? treeDigest(d.path).sha256 : await sha256File(d.path))
    const [bigDigest, smallDigest, logDigest, sparseDigest] = [await digestOf(big), await digestOf(small), await digestOf(log), await digestOf(sparse)]
    await execFileP('sync')

    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'escp-bench-transfer-'))
    teardown.add(`remove ${tmp}`, () => fs.rmSync(tmp, { recursive: true, force: true }))
    const sshd = runTools.some((t) => SSH_TOOLS.includes(t)) ? await startBenchSshd(teardown) : null
    if (sshd) progress(`private sshd on 127.0.0.1:${sshd.port} (${sshd.version}; default cipher ${sshd.defaultCipher})`)
    const diskDir = path.join(tmp, 'disk')
    fs.mkdirSync(diskDir)
    const diskFs = fileSystemName(diskDir)
    let ramDir = ''
    let ramFs = ''
    if (wants('small-files-tmpfs')) {
      ramDir = path.join(tmp, 'tmpfs')
      fs.mkdirSync(ramDir)
      await execFileP('mount', ['-t', 'tmpfs', '-o', `size=${TMPFS_SIZE},mode=0755`, 'escp-bench', ramDir]).catch((err: Error & { stderr?: string }) => {
        throw new Error(`cannot mount a tmpfs at ${ramDir} (the suite needs root for it): ${(err.stderr ?? err.message).trim()}`)
      })
      teardown.add(`unmount ${ramDir}`, () => execFileP('umount', [ramDir]))
      ramFs = fileSystemName(ramDir)
    }

    const file = (id: CellId, title: string, dataset: Dataset | null, digest: string, sparseFile = false): Cell[] =>
      dataset ? [{ id, title, tools: toolsOf(id), dataset, destinationDir: diskDir, destinationFs: diskFs, tree: false, sparse: sparseFile, digest, removeCopiesAtEnd: false }] : []
    const allCells: Cell[] = [
      ...file('big-file', `one ${sizeText(fileMiB)} file → ${diskFs}`, big, bigDigest),
      // Fifteen copies of the issue's tree take 5 GB of disk, and would not fit in the tmpfs.
      ...(small ? [{ id: 'small-files-ext4' as const, title: `${smallFiles} small files → ${diskFs}`, tools: toolsOf('small-files-ext4'), dataset: small, destinationDir: diskDir, destinationFs: diskFs, tree: true, sparse: false, digest: smallDigest, removeCopiesAtEnd: true }] : []),
      ...(small && ramDir ? [{ id: 'small-files-tmpfs' as const, title: `${smallFiles} small files → ${ramFs}`, tools: toolsOf('small-files-tmpfs'), dataset: small, destinationDir: ramDir, destinationFs: ramFs, tree: true, sparse: false, digest: smallDigest, removeCopiesAtEnd: false }] : []),
      ...file('log-file', `one ${sizeText(logMiB)} log-like text file → ${diskFs}`, log, logDigest),
      ...file('sparse-file', `one ${sizeText(sparseMiB)} sparse file, ${SPARSE.dataFraction * 100}% data → ${diskFs}`, sparse, sparseDigest, true),
    ]
    const cells = allCells.filter((c) => cellIds.includes(c.id) && c.tools.length > 0)
    const escpStartup = runTools.includes('escp') && cells.some((c) => c.tree && c.tools.includes('escp')) ? await measureEscpStartup(tmp) : null
    const cellReports: CellReport[] = []
    for (const cell of cells) {
      progress(`${cell.title}:`)
      const records: RunRecord[] = []
      const cellTools = cell.tools
      for (let r = 0; r < runs; r++) {
        // Each round starts with another tool, so none always runs first (or right after escp).
        for (let k = 0; k < cellTools.length; k++) {
          const tool = cellTools[(k + r) % cellTools.length]
          const rec = await measureRun(cell, tool, r + 1, sshd)
          records.push(rec)
          progress(`  ${tool} run ${r + 1}: ${rec.ok ? `${rec.wallSeconds.toFixed(2)} s, ${rec.cpuSeconds.toFixed(2)} CPU s` : `FAILED: ${rec.error}`}`)
        }
      }
      if (cell.removeCopiesAtEnd) {
        for (const name of fs.readdirSync(cell.destinationDir)) fs.rmSync(path.join(cell.destinationDir, name), { recursive: true, force: true })
        await execFileP('sync')
      }
      cellReports.push({
        id: cell.id,
        title: cell.title,
        tools: cellTools,
        dataset: { path: repoPath(cell.dataset.path), files: cell.dataset.files, bytes: cell.dataset.bytes, allocatedBytes: cell.tree ? null : allocatedBytes(cell.dataset.path) },
        destinationFs: cell.destinationFs,
        runs: records,
        stats: statsOf(records, cell.dataset.bytes, cellTools),
      })
    }
    const peerOf = (t: (typeof TARGETS)[number]) => cellReports.find((c) => c.id === t.cell)?.stats.find((s) => s.tool === t.peer)
    const targets = TARGETS.map((t) => {
      const speedup = peerOf(t)?.escpSpeedup ?? null
      return { text: t.text, escpSpeedup: speedup, met: speedup === null ? null : speedup >= t.factor }
    })
    const escpSshAgainstTargets = TARGETS.map((t) => ({ text: t.against, escpSshSpeedup: peerOf(t)?.escpSshSpeedup ?? null }))
    const result: TransferReport = {
      suite: SUITE,
      ...clock.finish(),
      machine,
      source,
      tools: { ...versions, ...(sshd ? { sshd: sshd.version } : {}) },
      method: {
        runs,
        tools: runTools,
        cells: cellIds,
        dataDir: repoPath(dataDir),
        fileBytes: bigSpec.bytes,
        smallFiles,
        logBytes: logSpec.bytes,
        sparseBytes: sparseSpec.bytes,
        datasetsGenerated: generated,
        generateSeconds,
        scpCipher: SCP_CIPHER,
        rsyncSshCipher: sshd?.defaultCipher ?? null,
        glibcTunables: process.env.GLIBC_TUNABLES ?? null,
        engines,
      },
      cells: cellReports,
      targets,
      escpSshAgainstTargets,
      escpStartup,
    }
    return result
  })

  publishResults(SUITE, clock.startedAt, report, renderSection)
  console.log(updateChart())
}

/** Runs of the one-byte copy that measures escp's own start-up and end. */
const STARTUP_RUNS = 5

/**
 * escp's start-up and end alone: copy() of a one-byte file, in a process of its own as the escp
 * rows run, each on a quiet machine; the wall time of the process tree, as their s column.
 */
async function measureEscpStartup(tmp: string): Promise<TransferReport['escpStartup']> {
  const src = path.join(tmp, 'one-byte')
  fs.writeFileSync(src, 'x')
  const seconds: number[] = []
  for (let i = 0; i < STARTUP_RUNS; i++) {
    const destination = path.join(tmp, `one-byte-copy-${i}`)
    await waitForQuiet(QUIET_WAIT_MS)
    const r = await runEscpCopy({ sources: [src], destination, options: { plugins: [...SHIPPED_PLUGINS] } })
    if (r.error !== null) throw new Error(`escp's one-byte copy failed: ${r.error}`)
    seconds.push(r.timed.wallSeconds)
    fs.rmSync(destination, { force: true })
  }
  progress(`escp start-up (a one-byte copy): ${seconds.map((x) => x.toFixed(2)).join(', ')} s`)
  return { seconds, medianSeconds: median(seconds) }
}

/** One copy by one tool: fresh destination, quiet machine, timed, verified, removed. */
async function measureRun(cell: Cell, tool: Tool, run: number, sshd: BenchSshd | null): Promise<RunRecord> {
  const destination = path.join(cell.destinationDir, `${tool}-${run}${cell.tree ? '' : '.bin'}`)
  // Dirty pages of earlier copies are written back now, not during this one.
  await execFileP('sync')
  const quiet = await waitForQuiet(QUIET_WAIT_MS)
  const machineBefore = readCpuTimes()
  const serverBefore = sshd?.serverCpuSeconds() ?? 0
  let timed: TimedResult
  let escp: RunRecord['escp']
  let escpSsh: RunRecord['escpSsh']
  /** Whether the sshd's sessions had all ended, when escp-ssh already waited for that. */
  let sshdIdle: boolean | undefined
  let error: string | undefined
  const src = cell.dataset.path
  if (tool === 'escp' || tool === 'escp-zstd') {
    const options = { ...(cell.tree ? { recursive: true } : {}), ...(tool === 'escp-zstd' ? { compressor: 'zstd' } : {}), plugins: [...SHIPPED_PLUGINS] }
    const r = await runEscpCopy({ sources: [src], destination, options })
    timed = r.timed
    escp = {
      copyWallSeconds: r.copy?.wallSeconds ?? null,
      callerCpuSeconds: r.copy?.callerCpuSeconds ?? null,
      receiverCpuSeconds: r.copy?.receiverCpuSeconds ?? null,
      wireBytes: r.copy?.summary.wireBytes ?? null,
      holeBytes: r.copy?.summary.holeBytes ?? null,
      threads: r.threads,
    }
    error = r.error ?? undefined
  } else {
    const [file, args] = commandOf(tool, cell, src, destination, sshd)
    if ((tool === 'escp-ssh' || tool === 'escp-ssh-zstd') && sshd) {
      // The sshd side is sampled from before the session starts, so its processes are seen from their first sample.
      const server = new ThreadSampler(sshd.pid)
      // escp's defaults, whatever config files this machine has.
      const proc = startTimed(file, args, { env: { ...process.env, ESCP_CONFIG: '/dev/null' } })
      const client = new ThreadSampler(proc.pid)
      timed = await proc.done
      const clientThreads = client.stop().filter((p) => !p.command.startsWith(GNU_TIME))
      // The server side's last samples are taken once its processes have ended.
      sshdIdle = await sshd.waitIdle()
      const serverThreads = server.stop()
      escpSsh = { threads: [...clientThreads, ...serverThreads].map((p) => ({ ...p, role: escpSshRoleOf(p, sshd.pid) })) }
    } else {
      timed = await runTimed(file, args)
    }
    if (timed.exitCode !== 0) error = `${timed.timedOut ? 'timed out' : `exit ${timed.exitCode}`}: ${tail(timed.stderr + timed.stdout)}`
  }
  let serverCpuSeconds: number | null = null
  if (SSH_TOOLS.includes(tool) && sshd) {
    if (!(sshdIdle ?? (await sshd.waitIdle()))) error ??= 'the sshd session was still running 10 s after the client exited'
    serverCpuSeconds = sshd.serverCpuSeconds() - serverBefore
  }
  const machineBusySeconds = busySeconds(machineBefore, readCpuTimes())
  error ??= await verify(cell, destination)
  const allocated = cell.tree || error !== undefined ? null : allocatedBytes(destination)
  if (!cell.removeCopiesAtEnd) fs.rmSync(destination, { recursive: true, force: true })
  const clientCpuSeconds = timed.userSeconds + timed.systemSeconds
  return {
    tool,
    run,
    command: timed.command,
    ok: error === undefined,
    error,
    wallSeconds: timed.wallSeconds,
    cpuSeconds: clientCpuSeconds + (serverCpuSeconds ?? 0),
    clientCpuSeconds,
    serverCpuSeconds,
    maxRssKiB: timed.maxRssKiB,
    allocatedBytes: allocated,
    machineBusySeconds,
    quiet,
    escp,
    escpSsh,
  }
}

/**
 * The command lines, as a user would type them (plus the private sshd's options; for escp-ssh,
 * -D so that the remote side runs this repository's escp too).
 */
function commandOf(tool: Exclude<Tool, 'escp' | 'escp-zstd'>, cell: Cell, src: string, destination: string, sshd: BenchSshd | null): [string, string[]] {
  const { tree, sparse } = cell
  // cp's default (--sparse=auto) keeps holes only when the source has enough of them; the sparse cell asks for them.
  if (tool === 'cp') return ['cp', tree ? ['-r', src, destination] : [...(sparse ? ['--sparse=always'] : []), src, destination]]
  // The names go as arguments of the shell, never inside its script.
  if (tool === 'tar') return ['sh', ['-c', 'mkdir "$2" && tar -C "$1" -cf - . | tar -C "$2" -xf -', 'sh', src, destination]]
  if (!sshd) throw new Error(`${tool} needs the private sshd, which was not started`)
  const remote = `${sshd.target}:${destination}`
  switch (tool) {
    case 'scp':
    case 'scp-default':
      return ['scp', ['-q', ...(tool === 'scp' ? ['-c', SCP_CIPHER] : []), ...sshd.sshOptions, ...(tree ? ['-r'] : []), src, remote]]
    case 'rsync':
      // A trailing slash: the tree's contents go into the new directory, as cp -r and scp -r place them.
      // No -z: rsync's default, and what the others get (escp compresses only in its -zstd rows).
      return ['rsync', [...(tree ? ['-r', `${src}/`] : [...(sparse ? ['--sparse'] : []), src]), '-e', ['ssh', ...sshd.sshOptions].join(' '), remote]]
    case 'escp-ssh':
    case 'escp-ssh-zstd':
      return [process.execPath, [ESCP_CLI, '-q', ...sshd.sshOptions, '-D', ESCP_CLI, ...(tool === 'escp-ssh-zstd' ? ['-C'] : []), ...(tree ? ['-r'] : []), src, remote]]
  }
}

/** What a process of an escp-ssh run was, for its CPU profile. */
function escpSshRoleOf(p: ProcessProfile, sshdPid: number): string {
  if (p.pid === sshdPid) return 'sshd (listener)'
  if (/^(\S*\/)?sshd/.test(p.command)) return 'sshd (session)'
  // Before the server: the ssh client's command line names the remote `escp server` too.
  if (/^(\S*\/)?ssh /.test(p.command)) return 'ssh (client)'
  if (/run\.js server\b/.test(p.command)) return 'receiver (escp server, under sshd)'
  if (p.command.includes(ESCP_CLI)) return 'sender (escp command)'
  return p.command.slice(0, 60)
}

/** Undefined when `destination` holds exactly the source's bytes; else what differs. */
async function verify(cell: Cell, destination: string): Promise<string | undefined> {
  try {
    if (cell.tree) {
      const d = treeDigest(destination)
      if (d.sha256 !== cell.digest) return `the copy differs from the source: ${d.files} entries, ${d.bytes} bytes (source: ${cell.dataset.files} files, ${cell.dataset.bytes} bytes)`
    } else {
      const size = fs.statSync(destination).size
      if (size !== cell.dataset.bytes) return `the copy has ${size} bytes, the source ${cell.dataset.bytes}`
      if ((await sha256File(destination)) !== cell.digest) return 'the copy has the right size but other bytes (sha256 differs)'
    }
  } catch (err) {
    return `cannot read the copy: ${(err as Error).message}`
  }
  return undefined
}

function statsOf(records: readonly RunRecord[], bytes: number, tools: readonly Tool[]): ToolStats[] {
  const byTool = tools.map((tool) => {
    const mine = records.filter((r) => r.tool === tool)
    const ok = mine.filter((r) => r.ok)
    return {
      tool,
      ...timingStats(ok.map((r) => r.wallSeconds), mine.length, bytes),
      medianCpuSeconds: median(ok.map((r) => r.cpuSeconds)),
      maxRssKiB: ok.length ? Math.max(...ok.map((r) => r.maxRssKiB)) : null,
      medianAllocatedBytes: median(ok.flatMap((r) => (r.allocatedBytes === null ? [] : [r.allocatedBytes]))),
      medianOthersCpuSeconds: median(ok.flatMap((r) => (r.machineBusySeconds === null ? [] : [Math.max(0, r.machineBusySeconds - r.cpuSeconds)]))),
      escpSpeedup: null as number | null,
      escpSshSpeedup: null as number | null,
    }
  })
  const escp = byTool.find((s) => s.tool === 'escp')?.medianSeconds ?? null
  const escpSsh = byTool.find((s) => s.tool === 'escp-ssh')?.medianSeconds ?? null
  for (const s of byTool) {
    s.escpSpeedup = s.medianSeconds === null || escp === null ? null : s.medianSeconds / escp
    s.escpSshSpeedup = s.medianSeconds === null || escpSsh === null ? null : s.medianSeconds / escpSsh
  }
  return byTool
}

/** --tools and --cells: a subset of `all`, kept in its order; all of it when the option is absent. */
function listOption<T extends string>(name: string, all: readonly T[], text: string | undefined): T[] {
  if (text === undefined) return [...all]
  const names = text.split(',').map((t) => t.trim())
  const unknown = names.filter((n) => !(all as readonly string[]).includes(n))
  if (unknown.length > 0) throw new UsageError(`${SUITE}: --${name} takes a comma-separated list of ${all.join(', ')}; got '${text}'`)
  return all.filter((t) => names.includes(t))
}

/** For file names: 64 → '64MiB', 2048 → '2GiB' (the issue's 'random-2GiB.bin'). */
function sizeName(mib: number): string {
  return mib % 1024 === 0 ? `${mib / 1024}GiB` : `${mib}MiB`
}

function sizeText(mib: number): string {
  return sizeName(mib).replace(/(\d)([MG])/, '$1 $2')
}

/** The engine copy() runs on both sides when asked for 'auto', given the engine packages the escp command ships. */
async function loopbackEngine(): Promise<string> {
  const { registry } = await loadPlugins({ plugins: [...pluginsFromEnv(), ...SHIPPED_PLUGINS] })
  return registry.resolve('engine', AUTO_ENGINE).name
}

/**
 * The engine the escp command (and `escp server`, the same program here) runs when asked for
 * 'auto': the registry's choice among the engines `escp engines` lists, the plugins the
 * command loads (its bundled engines, installed plugins, ESCP_PLUGINS).
 */
async function cliEngine(): Promise<string> {
  try {
    const { stdout } = await execFileP(process.execPath, [ESCP_CLI, 'engines', '--json'], { env: { ...process.env, ESCP_CONFIG: '/dev/null' } })
    const entries = JSON.parse(stdout) as { kind: string; plugin: string }[]
    const plugins = [...new Set(entries.filter((e) => e.kind === 'engine' && e.plugin !== '@escp/core').map((e) => e.plugin))]
    const { registry } = await loadPlugins({ plugins })
    return registry.resolve('engine', AUTO_ENGINE).name
  } catch (err) {
    return `${AUTO_ENGINE} (not resolved here: ${(err as Error).message.split('\n')[0]})`
  }
}

async function toolVersions(): Promise<Record<string, string>> {
  const first = async (file: string, args: string[]) => {
    try {
      const { stdout, stderr } = await execFileP(file, args)
      return (stdout || stderr).split('\n')[0].trim()
    } catch (err) {
      return `unavailable: ${(err as Error).message}`
    }
  }
  return {
    cp: await first('cp', ['--version']),
    tar: await first('tar', ['--version']),
    rsync: await first('rsync', ['--version']),
    ssh: await first('ssh', ['-V']),
    escp: await first(process.execPath, [ESCP_CLI, '-V']),
  }
}

function renderSection(report: TransferReport, jsonFile: string): string {
  const { machine, method } = report
  const ran = (tool: Tool) => method.tools.includes(tool)
  const tables = report.cells.flatMap((cell) => {
    const inCell = (tool: Tool) => cell.tools.includes(tool)
    const sparse = cell.id === 'sparse-file'
    const missing = (['escp', 'escp-ssh'] as const).filter((t) => inCell(t) && !cell.stats.find((s) => s.tool === t)?.medianSeconds)
    const rows = cell.stats.map((s) => [
      s.tool,
      ...timingCells(s),
      fixed(s.medianCpuSeconds),
      s.maxRssKiB === null ? '' : Math.round(s.maxRssKiB / 1024).toString(),
      fixed(s.medianOthersCpuSeconds),
      ...(sparse ? [mib(s.medianAllocatedBytes)] : []),
      ...(inCell('escp') ? [ratio(s.tool === 'escp' ? null : s.escpSpeedup)] : []),
      ...(inCell('escp-ssh') ? [ratio(s.tool === 'escp-ssh' ? null : s.escpSshSpeedup)] : []),
    ])
    const failures = cell.runs.filter((r) => !r.ok).map((r) => `- ${r.tool} run ${r.run} failed: ${r.error}`)
    const source = sparse && cell.dataset.allocatedBytes !== null ? ` (${mib(cell.dataset.allocatedBytes)} MiB allocated on disk: the rest is holes)` : ''
    // What copy() reported sending: compression shows as fewer bytes on the wire, holes as bytes skipped.
    const escpLines = (['escp', 'escp-zstd'] as const).flatMap((tool) => {
      const done = cell.runs.filter((r) => r.tool === tool && r.ok && r.escp)
      const wire = median(done.flatMap((r) => (r.escp?.wireBytes == null ? [] : [r.escp.wireBytes])))
      const holes = median(done.flatMap((r) => (r.escp?.holeBytes == null ? [] : [r.escp.holeBytes])))
      if (wire === null || (tool === 'escp' && cell.id !== 'log-file' && !sparse)) return []
      return [`- ${tool} sent ${wire} bytes of block payload (file ÷ wire ${(cell.dataset.bytes / Math.max(1, wire)).toFixed(2)}×)${holes ? `, and skipped ${holes} bytes as holes` : ''} (median of its runs).`]
    })
    return [
      `### ${cell.title}`,
      '',
      `${cell.dataset.files} file${cell.dataset.files > 1 ? 's' : ''}, ${cell.dataset.bytes} bytes${source}${missing.map((t) => `; ${t} has no successful run, so no ratios to it`).join('')}.`,
      ...(escpLines.length ? ['', ...escpLines] : []),
      '',
      markdownTable(
        [
          { header: 'tool' },
          ...TIMING_COLUMNS,
          { header: 'median CPU s', align: 'right' },
          { header: 'peak RSS MiB', align: 'right' },
          { header: "median others' CPU s", align: 'right' },
          ...(sparse ? [{ header: 'copy allocated MiB', align: 'right' as const }] : []),
          ...(inCell('escp') ? [{ header: 'escp speed-up (tool s ÷ escp s)', align: 'right' as const }] : []),
          ...(inCell('escp-ssh') ? [{ header: 'escp-ssh speed-up (tool s ÷ escp-ssh s)', align: 'right' as const }] : []),
        ],
        rows,
      ),
      ...(failures.length ? ['', ...failures] : []),
      '',
    ]
  })
  const profiles = report.cells.flatMap((cell) =>
    (['escp', 'escp-zstd', 'escp-ssh', 'escp-ssh-zstd'] as const).flatMap((tool) => {
      const done = cell.runs.filter((r) => r.tool === tool && r.ok)
      const med = median(done.map((r) => r.wallSeconds))
      const pick = done.find((r) => r.wallSeconds === med) ?? done[0]
      if (!pick) return []
      const threads = (pick.escp ?? pick.escpSsh)?.threads ?? []
      return threads.map((p) => ({ run: `${cell.id}, ${tool} run ${pick.run}`, role: p.role, wallSeconds: pick.wallSeconds, profile: p }))
    }),
  )
  const targetLines = report.targets.map(
    (t, i) => `- ${t.text}: ${t.escpSpeedup === null ? 'not measured' : `escp ${t.escpSpeedup.toFixed(2)}× (median against median), **${t.met ? 'met' : 'not met'}**${t.met ? '' : forScale(report, TARGETS[i])}`}`,
  )
  const sshLines = report.escpSshAgainstTargets.map(
    (t) => `- Information, not a target: escp-ssh (the escp command through sshd), ${t.text}: ${t.escpSshSpeedup === null ? 'not measured' : `${t.escpSshSpeedup.toFixed(2)}× (median against median)`}`,
  )
  const issueData =
    method.fileBytes === DEFAULT_FILE_MIB * 2 ** 20 && method.smallFiles === DEFAULT_SMALL_FILES && method.logBytes === DEFAULT_LOG_MIB * 2 ** 20 && method.sparseBytes === DEFAULT_SPARSE_MIB * 2 ** 20
  const sparseRan = method.cells.includes('sparse-file')
  /** How each tool ran, for the tools this run measured. */
  const toolLines: Record<Tool, string> = {
    cp: `- **cp**: \`cp SRC DST\`, \`cp -r SRC DST\`${sparseRan ? '; for the sparse file `cp --sparse=always SRC DST` (its default, --sparse=auto, keeps holes only when it sees enough of them in the source)' : ''}.`,
    scp: `- **scp**: \`scp -q -c ${method.scpCipher} -F CONFIG [-r] SRC user@127.0.0.1:DST\` through a private sshd started by the suite (the end-to-end tests' \`test/helpers/sshd.ts\`: its own host key and port, a throwaway client key; CONFIG sets the port, the key, \`StrictHostKeyChecking no\`, \`UserKnownHostsFile /dev/null\`, \`BatchMode yes\`). OpenSSH 9's scp speaks SFTP to the server; it has no way to keep holes, so a sparse file arrives whole. The targets are computed against this row.`,
    tar: "- **tar** (the trees only): `mkdir DST && tar -C SRC -cf - . | tar -C DST -xf -`: two processes, as escp's sender and receiver, with no encryption, network or verification, so what copying the tree through a pipe costs here before any of escp's own work.",
    'scp-default': `- **scp-default**: the same without \`-c\`: ssh's default cipher (${method.rsyncSshCipher} here), what users get unless they choose.`,
    rsync: `- **rsync**: \`rsync [-r] SRC[/] -e 'ssh -F CONFIG' user@127.0.0.1:DST\`, with ssh's default cipher (${method.rsyncSshCipher} here) and rsync's defaults: no \`-z\`, so nothing is compressed, the log file included${sparseRan ? '; for the sparse file `rsync --sparse`, which leaves runs of zeros as holes at the receiver (it still reads and sends the whole file)' : ''}.`,
    escp: `- **escp**: \`copy({sources: [SRC], destination: DST, options: {}})\`, \`{recursive: true}\` for the tree (default options otherwise: ${loopbackStreams()} stream(s) (a local copy takes one per two cores, 1 to 4), 1 MiB blocks, aes-128-gcm, xxh64 verification, engine '${AUTO_ENGINE}', which resolved to ${method.engines.escp} here: 'auto' takes the native posix engine where it is loaded and available, else node-fs; copy() is given the engine packages the escp command ships (${SHIPPED_PLUGINS.join(', ')}), so it runs what \`escp a b\` runs), called by a small Node script (\`bench/lib/escp-copy.cjs\`) that asks, as the escp command does, for the V8 flags the command runs with (\`V8_FLAGS\`: ${V8_FLAGS.join(' ')}), set once the session's stream workers run; loopback mode: the receiver is a child process, the data crosses encrypted TCP streams on loopback; no ssh is involved.`,
    'escp-ssh': `- **escp-ssh**: the escp command, \`node packages/cli/bin/run.js -q -F CONFIG -D packages/cli/bin/run.js [-r] SRC user@127.0.0.1:DST\`, through the same private sshd as scp and rsync: ssh (its default cipher) starts \`escp server\` of this repository (-D) on the "remote" side, carries only the control channel, and the data crosses ${DEFAULT_OPTIONS.streams} encrypted TCP streams on loopback (escp's defaults over ssh: ${DEFAULT_OPTIONS.streams} streams, 1 MiB blocks, ${DEFAULT_OPTIONS.cipher}, ${DEFAULT_OPTIONS.checksum} verification, engine '${DEFAULT_OPTIONS.engine}', which resolved to ${method.engines.escpSsh} here, on both ends: the command, and \`escp server\` with it, loads its bundled engine plugins besides the built-ins). ESCP_CONFIG=/dev/null, so no config file changes the defaults.`,
    'escp-zstd': '- **escp-zstd** (log file only): escp as above with `{compressor: \'zstd\'}`, what `escp -C` asks for: blocks compressed with zstd at its default level, those that do not shrink sent raw.',
    'escp-ssh-zstd': '- **escp-ssh-zstd** (log file only): escp-ssh with `-C`.',
  }
  const holesLine = sparseRan
    ? `- **Sparse file**: escp's sender finds the holes (SEEK_DATA/SEEK_HOLE) and skips the blocks that lie wholly in them when both ends speak protocol 1.1 and the engine reads extents (the posix engine); the receiver leaves them as holes. **copy allocated MiB**: the copy's st_blocks × 512 (median), the space it took on disk; the source's is in the line above the table. Each copy is verified by sha256 of its content, holes read as zeros.`
    : null
  return [
    `## ${SUITE}`,
    '',
    `Measured ${report.date} by \`npm run bench -- ${SUITE}\` in ${Math.round(report.durationSeconds / 60)} min; data: \`${jsonFile}\`.`,
    '',
    machineLine(machine),
    `- Node ${machine.node}; ${report.tools.cp}; ${report.tools.tar ?? 'tar not run'}; ${report.tools.rsync}; ${report.tools.ssh}; ${report.tools.escp}`,
    loadLine(report),
    sourceLine(report.source),
    `- Datasets in \`${method.dataDir}\`, ${method.datasetsGenerated ? `generated by this run in ${Math.round(method.generateSeconds)} s` : 'reused from an earlier run'}${issueData ? '' : `, smaller than the issue's (random ${sizeText(DEFAULT_FILE_MIB)}, ${DEFAULT_SMALL_FILES} files, log ${sizeText(DEFAULT_LOG_MIB)}, sparse ${sizeText(DEFAULT_SPARSE_MIB)}): a quick run`}${method.cells.length < CELLS.length ? `; cells run: ${method.cells.join(', ')}` : ''}; the sources are read from the page cache (hashed just before).`,
    '',
    `${method.runs} run${method.runs > 1 ? 's' : ''} of each tool per case (${method.tools.join(', ')}), the tools taking turns; each copy goes to a new name, \`sync\` runs before each run (not timed), and every copy is checked against the source (sha256 of the file; for a tree, sha256 over the sorted relative paths, sizes and contents). Copies are removed right after their run, except in the ext4 small-files case, where they stay until the case ends: this ext4 has no journal, and such an ext4 skips recently freed inodes when it allocates new ones, reading each one's inode to find out (\`recently_deleted()\` in its inode allocator, seen with perf); in runs that removed each copy at once, \`cp -r\` of the tree took 7.9 s where it had taken 0.4 s. Figures are over the successful runs.`,
    '',
    ...tables,
    `**Targets** (from the issue${issueData ? '' : "; measured here on this run's smaller datasets"}):`,
    '',
    ...targetLines,
    ...(ran('escp-ssh') ? sshLines : []),
    '',
    'How each tool ran and what its figures cover:',
    '',
    ...method.tools.map((t) => toolLines[t]),
    ...(holesLine ? [holesLine] : []),
    '- **s**: wall time of the command, GNU time `%e`, start-up included (Node\'s, for escp; the ssh handshake, for scp and rsync; both, and the server\'s Node start-up, for escp-ssh). **MB/s**: bytes of the dataset over the median s.',
    '- **CPU s**: user + system CPU of the command\'s process tree, GNU time `%U + %S` (for escp: the sender process with its worker threads and the receiver child that copy() waits for; for escp-ssh: the escp command with its worker threads and the ssh client it starts); for scp, rsync and escp-ssh plus the server side: the CPU of sshd\'s session processes (sshd, sftp-server, the remote rsync, `escp server` with its worker threads), read from the private sshd\'s children times in /proc once they have exited. **peak RSS**: GNU time `%M`, the largest single process of the command\'s tree (not a sum); the sshd side is not included (for escp-ssh: the receiver, `escp server`, is not in it).',
    `- **others' CPU s**: CPU the rest of the machine used during the run (the median): other people's work on this shared machine, and this suite's own bookkeeping. Before each run the suite waited for a second with at most ${QUIET_BUSY_PERCENT}% of the CPUs busy, up to ${QUIET_WAIT_MS / 1000} s (waited ${Math.round(report.cells.reduce((t, c) => t + c.runs.reduce((u, r) => u + r.quiet.waitedSeconds, 0), 0))} s in all).`,
    `- GLIBC_TUNABLES: copy() gives its receiver child the malloc thresholds from DESIGN.md; the sender process${ran('escp-ssh') ? ' and the escp command' : ''} ran with ${method.glibcTunables === null ? 'glibc defaults (GLIBC_TUNABLES unset)' : `GLIBC_TUNABLES=${method.glibcTunables}`}${ran('escp-ssh') ? "; `escp server` under sshd ran with the environment sshd gives a session (the private sshd sets PATH, nothing else), as on a remote host" : ''}.`,
    '',
    'Where escp\'s and escp-ssh\'s CPU went in the median run of each case (per process and thread, sampled from /proc every 0.2 s, so a process that lived less than that can be missing; "busy" is the main thread\'s CPU over the run\'s wall time; other threads: the stream workers (one per stream) and their helpers: libuv\'s file-system pool (shared by the workers; mostly system time), the posix engine\'s I/O threads where it runs, and V8\'s garbage collector):',
    '',
    profileTable(profiles),
  ].join('\n')
}

/**
 * Beside a target not met on a tree: the time it asks escp for, what the local copies of the
 * same tree took in the run (cp -r; tar c | tar x, two processes), none of which encrypts,
 * verifies, crosses a socket or starts Node, and escp's own start-up added to tar's time.
 */
function forScale(report: TransferReport, target: (typeof TARGETS)[number]): string {
  const cell = report.cells.find((c) => c.id === target.cell)
  const secondsOf = (tool: Tool) => cell?.stats.find((s) => s.tool === tool)?.medianSeconds ?? null
  const peer = secondsOf(target.peer)
  const local = (['tar', 'cp'] as const).flatMap((tool) => {
    const seconds = secondsOf(tool)
    return seconds === null ? [] : [`${tool === 'tar' ? '`tar c | tar x`' : '`cp -r`'} ${seconds.toFixed(2)} s`]
  })
  if (!cell || peer === null || local.length === 0 || !TREE_CELLS.includes(cell.id)) return ''
  const startup = report.escpStartup?.medianSeconds ?? null
  const tar = secondsOf('tar')
  const floor =
    startup === null || tar === null
      ? ''
      : `; escp's own start-up and end (a one-byte copy, median of ${report.escpStartup?.seconds.length} in this run) took ${startup.toFixed(2)} s, which with \`tar c | tar x\`'s ${tar.toFixed(2)} s makes ${(startup + tar).toFixed(2)} s before any encryption, verification or other work per file`
  return `; for scale: ${Number(target.factor.toFixed(2))}× ${target.peer}'s ${peer.toFixed(2)} s asks for ${(peer / target.factor).toFixed(2)} s, and local copies of the same tree, with no encryption, verification, socket or Node start-up, took ${local.join(' and ')}${floor}`
}

function mib(bytes: number | null): string {
  return bytes === null ? '' : (bytes / 2 ** 20).toFixed(1)
}

function ratio(x: number | null): string {
  return x === null ? '' : `${x.toFixed(2)}×`
}

function progress(line: string): void {
  process.stderr.write(`${line}\n`)
}
