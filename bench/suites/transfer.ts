// Whole copies on this machine, escp beside the tools people use instead, in the same run:
// cp, scp (aes128-gcm) and rsync over ssh through a private sshd on 127.0.0.1, and escp in
// loopback mode through the library (copy(), default options). Two datasets: one 2 GiB file of
// random bytes, and 10,000 small files of 1-64 KiB; the small files also go to a tmpfs, where
// file creation on ext4 no longer dominates. Every copy is verified by content hash.
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { integerOption, parseSuiteArgs } from '../lib/args'
import { updateChart } from '../lib/chart'
import { ensureBigFile, ensureSmallTree, sha256File, treeDigest } from '../lib/datasets'
import type { Dataset } from '../lib/datasets'
import { runEscpCopy } from '../lib/escp-run'
import { loopbackStreams } from '@escp/core'
import { QUIET_BUSY_PERCENT, busySeconds, describeMachine, fileSystemName, loadLine, machineLine, readCpuTimes, startRun, waitForQuiet } from '../lib/machine'
import type { MachineInfo, QuietWait, RunConditions } from '../lib/machine'
import type { ProcessProfile } from '../lib/proc'
import { publishResults, repoPath } from '../lib/results'
import { startBenchSshd } from '../lib/sshd'
import type { BenchSshd } from '../lib/sshd'
import { sourceLine, sourceState } from '../lib/source-state'
import type { SourceState } from '../lib/source-state'
import { median } from '../lib/stats'
import { markdownTable, profileTable } from '../lib/table'
import { withTeardown } from '../lib/teardown'
import { runTimed, tail } from '../lib/timed-command'
import type { TimedResult } from '../lib/timed-command'

const execFileP = promisify(execFile)

const SUITE = 'transfer'
const DEFAULT_RUNS = 3
const DEFAULT_DATA_DIR = path.resolve(__dirname, '..', 'data')
const BIG = { name: 'random-2GiB.bin', bytes: 2 * 2 ** 30 }
const SMALL = { name: 'small-10000', files: 10_000, minBytes: 1024, maxBytes: 64 * 1024, filesPerDir: 100 }
/** Longest wait for neighbours' work to calm down before a run (short: 36 runs by default). */
const QUIET_WAIT_MS = 10_000
const SCP_CIPHER = 'aes128-gcm@openssh.com'
/** Room for the small-files tree (about 330 MB) in the tmpfs. */
const TMPFS_SIZE = '1g'
/** The issue's targets: escp's median time at least this many times shorter than the peer's. */
const TARGETS = [
  { cell: 'big-file', peer: 'scp', factor: 2, text: 'the 2 GiB file at least 2× as fast as scp with aes128-gcm' },
  { cell: 'small-files-tmpfs', peer: 'rsync', factor: 2, text: '10,000 small files into tmpfs at least 2× as fast as rsync over ssh' },
] as const

export const usage = [
  `  --runs N     runs of each tool in each case (default ${DEFAULT_RUNS})`,
  `  --data DIR   where the datasets are generated once and then reused (default ${repoPath(DEFAULT_DATA_DIR)}/)`,
].join('\n')

type Tool = 'cp' | 'scp' | 'rsync' | 'escp'
const TOOLS: readonly Tool[] = ['cp', 'scp', 'rsync', 'escp']

interface Cell {
  id: 'big-file' | 'small-files-ext4' | 'small-files-tmpfs'
  title: string
  dataset: Dataset
  /** Where the destination is created; a fresh name under it each run. */
  destinationDir: string
  destinationFs: string
  tree: boolean
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
  /** User + system of the command's process tree (GNU time) plus, for scp and rsync, the sshd side. */
  cpuSeconds: number
  clientCpuSeconds: number
  serverCpuSeconds: number | null
  maxRssKiB: number
  /** CPU seconds the whole machine spent busy during the run, all processes. */
  machineBusySeconds: number | null
  quiet: QuietWait
  /** escp only: the copy() call as measured inside, and where its CPU went. */
  escp?: { copyWallSeconds: number | null; callerCpuSeconds: number | null; receiverCpuSeconds: number | null; threads: (ProcessProfile & { role: string })[] }
}

interface ToolStats {
  tool: Tool
  runsOk: number
  runs: number
  medianSeconds: number | null
  minSeconds: number | null
  maxSeconds: number | null
  mbPerSecond: number | null
  medianCpuSeconds: number | null
  maxRssKiB: number | null
  medianOthersCpuSeconds: number | null
  /** The peer's median time over escp's: above 1, escp was faster. */
  escpSpeedup: number | null
}

interface CellReport {
  id: Cell['id']
  title: string
  dataset: { path: string; files: number; bytes: number }
  destinationFs: string
  runs: RunRecord[]
  stats: ToolStats[]
}

interface TransferReport extends RunConditions {
  suite: string
  machine: MachineInfo
  source: SourceState
  tools: Record<string, string>
  method: { runs: number; dataDir: string; datasetsGenerated: boolean; generateSeconds: number; scpCipher: string; rsyncSshCipher: string; glibcTunables: string | null }
  cells: CellReport[]
  targets: { text: string; escpSpeedup: number | null; met: boolean | null }[]
}

export async function run(args: readonly string[] = []): Promise<void> {
  const values = parseSuiteArgs(SUITE, args, { runs: { type: 'string' }, data: { type: 'string' } })
  const runs = integerOption(SUITE, 'runs', values.runs, DEFAULT_RUNS)
  const dataDir = path.resolve(values.data ?? DEFAULT_DATA_DIR)
  const clock = startRun()
  const machine = describeMachine()
  const source = sourceState()
  const tools = await toolVersions()
  progress(`transfer: ${runs} run(s) of each tool; data in ${dataDir}; ${machine.cpuModel}, ${machine.nproc} cores, Node ${machine.node}`)

  const report = await withTeardown(async (teardown) => {
    fs.mkdirSync(dataDir, { recursive: true })
    const genStart = Date.now()
    const big = ensureBigFile(dataDir, BIG)
    const small = ensureSmallTree(dataDir, SMALL)
    const generateSeconds = (Date.now() - genStart) / 1000
    const generated = big.generated || small.generated
    progress(`datasets ${generated ? `generated in ${generateSeconds.toFixed(0)} s` : 'reused'}: ${big.path} (${big.bytes} bytes), ${small.path} (${small.files} files, ${small.bytes} bytes)`)
    // Hashing the sources also puts them in the page cache, where every tool finds them.
    const bigDigest = await sha256File(big.path)
    const smallDigest = treeDigest(small.path).sha256
    await execFileP('sync')

    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'escp-bench-transfer-'))
    teardown.add(`remove ${tmp}`, () => fs.rmSync(tmp, { recursive: true, force: true }))
    const sshd = await startBenchSshd(teardown)
    progress(`private sshd on 127.0.0.1:${sshd.port} (${sshd.version})`)
    const diskDir = path.join(tmp, 'disk')
    fs.mkdirSync(diskDir)
    const ramDir = path.join(tmp, 'tmpfs')
    fs.mkdirSync(ramDir)
    await execFileP('mount', ['-t', 'tmpfs', '-o', `size=${TMPFS_SIZE},mode=0755`, 'escp-bench', ramDir]).catch((err: Error & { stderr?: string }) => {
      throw new Error(`cannot mount a tmpfs at ${ramDir} (the suite needs root for it): ${(err.stderr ?? err.message).trim()}`)
    })
    teardown.add(`unmount ${ramDir}`, () => execFileP('umount', [ramDir]))

    const diskFs = fileSystemName(diskDir)
    const ramFs = fileSystemName(ramDir)
    const cells: Cell[] = [
      { id: 'big-file', title: `one ${BIG.bytes / 2 ** 30} GiB file → ${diskFs}`, dataset: big, destinationDir: diskDir, destinationFs: diskFs, tree: false, digest: bigDigest, removeCopiesAtEnd: false },
      // Twelve copies of the tree take 4 GB of disk, and would not fit in the tmpfs.
      { id: 'small-files-ext4', title: `${SMALL.files} small files → ${diskFs}`, dataset: small, destinationDir: diskDir, destinationFs: diskFs, tree: true, digest: smallDigest, removeCopiesAtEnd: true },
      { id: 'small-files-tmpfs', title: `${SMALL.files} small files → ${ramFs}`, dataset: small, destinationDir: ramDir, destinationFs: ramFs, tree: true, digest: smallDigest, removeCopiesAtEnd: false },
    ]
    const cellReports: CellReport[] = []
    for (const cell of cells) {
      progress(`${cell.title}:`)
      const records: RunRecord[] = []
      for (let r = 0; r < runs; r++) {
        // Each round starts with another tool, so none always runs first (or right after escp).
        for (let k = 0; k < TOOLS.length; k++) {
          const tool = TOOLS[(k + r) % TOOLS.length]
          const rec = await measureRun(cell, tool, r + 1, sshd)
          records.push(rec)
          progress(`  ${tool} run ${r + 1}: ${rec.ok ? `${rec.wallSeconds.toFixed(2)} s, ${rec.cpuSeconds.toFixed(2)} CPU s` : `FAILED: ${rec.error}`}`)
        }
      }
      if (cell.removeCopiesAtEnd) {
        for (const name of fs.readdirSync(cell.destinationDir)) fs.rmSync(path.join(cell.destinationDir, name), { recursive: true, force: true })
        await execFileP('sync')
      }
      cellReports.push({ id: cell.id, title: cell.title, dataset: { path: repoPath(cell.dataset.path), files: cell.dataset.files, bytes: cell.dataset.bytes }, destinationFs: cell.destinationFs, runs: records, stats: statsOf(records, cell.dataset.bytes) })
    }
    const targets = TARGETS.map((t) => {
      const speedup = cellReports.find((c) => c.id === t.cell)?.stats.find((s) => s.tool === t.peer)?.escpSpeedup ?? null
      return { text: t.text, escpSpeedup: speedup, met: speedup === null ? null : speedup >= t.factor }
    })
    const result: TransferReport = {
      suite: SUITE,
      ...clock.finish(),
      machine,
      source,
      tools: { ...tools, sshd: sshd.version },
      method: { runs, dataDir: repoPath(dataDir), datasetsGenerated: generated, generateSeconds, scpCipher: SCP_CIPHER, rsyncSshCipher: sshd.defaultCipher, glibcTunables: process.env.GLIBC_TUNABLES ?? null },
      cells: cellReports,
      targets,
    }
    return result
  })

  publishResults(SUITE, clock.startedAt, report, renderSection)
  console.log(updateChart())
}

/** One copy by one tool: fresh destination, quiet machine, timed, verified, removed. */
async function measureRun(cell: Cell, tool: Tool, run: number, sshd: BenchSshd): Promise<RunRecord> {
  const destination = path.join(cell.destinationDir, `${tool}-${run}${cell.tree ? '' : '.bin'}`)
  // Dirty pages of earlier copies are written back now, not during this one.
  await execFileP('sync')
  const quiet = await waitForQuiet(QUIET_WAIT_MS)
  const machineBefore = readCpuTimes()
  const serverBefore = sshd.serverCpuSeconds()
  let timed: TimedResult
  let escp: RunRecord['escp']
  let error: string | undefined
  const src = cell.dataset.path
  const remote = `${sshd.target}:${destination}`
  if (tool === 'escp') {
    const r = await runEscpCopy({ sources: [src], destination, options: cell.tree ? { recursive: true } : {} })
    timed = r.timed
    escp = { copyWallSeconds: r.copy?.wallSeconds ?? null, callerCpuSeconds: r.copy?.callerCpuSeconds ?? null, receiverCpuSeconds: r.copy?.receiverCpuSeconds ?? null, threads: r.threads }
    error = r.error ?? undefined
  } else {
    const [file, args] = commandOf(tool, cell.tree, src, destination, remote, sshd)
    timed = await runTimed(file, args)
    if (timed.exitCode !== 0) error = `${timed.timedOut ? 'timed out' : `exit ${timed.exitCode}`}: ${tail(timed.stderr + timed.stdout)}`
  }
  let serverCpuSeconds: number | null = null
  if (tool === 'scp' || tool === 'rsync') {
    if (!(await sshd.waitIdle())) error ??= 'the sshd session was still running 10 s after the client exited'
    serverCpuSeconds = sshd.serverCpuSeconds() - serverBefore
  }
  const machineBusySeconds = busySeconds(machineBefore, readCpuTimes())
  error ??= await verify(cell, destination)
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
    machineBusySeconds,
    quiet,
    escp,
  }
}

/** The peers' command lines, as a user would type them (plus the private sshd's options). */
function commandOf(tool: Exclude<Tool, 'escp'>, tree: boolean, src: string, destination: string, remote: string, sshd: BenchSshd): [string, string[]] {
  switch (tool) {
    case 'cp':
      return ['cp', tree ? ['-r', src, destination] : [src, destination]]
    case 'scp':
      return ['scp', ['-q', '-c', SCP_CIPHER, ...sshd.sshOptions, ...(tree ? ['-r'] : []), src, remote]]
    case 'rsync':
      // A trailing slash: the tree's contents go into the new directory, as cp -r and scp -r place them.
      return ['rsync', [...(tree ? ['-r', `${src}/`] : [src]), '-e', ['ssh', ...sshd.sshOptions].join(' '), remote]]
  }
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

function statsOf(records: readonly RunRecord[], bytes: number): ToolStats[] {
  const byTool = TOOLS.map((tool) => {
    const mine = records.filter((r) => r.tool === tool)
    const ok = mine.filter((r) => r.ok)
    const seconds = ok.map((r) => r.wallSeconds)
    const medianSeconds = median(seconds)
    return {
      tool,
      runsOk: ok.length,
      runs: mine.length,
      medianSeconds,
      minSeconds: ok.length ? Math.min(...seconds) : null,
      maxSeconds: ok.length ? Math.max(...seconds) : null,
      mbPerSecond: medianSeconds === null ? null : bytes / medianSeconds / 1e6,
      medianCpuSeconds: median(ok.map((r) => r.cpuSeconds)),
      maxRssKiB: ok.length ? Math.max(...ok.map((r) => r.maxRssKiB)) : null,
      medianOthersCpuSeconds: median(ok.flatMap((r) => (r.machineBusySeconds === null ? [] : [Math.max(0, r.machineBusySeconds - r.cpuSeconds)]))),
      escpSpeedup: null as number | null,
    }
  })
  const escp = byTool.find((s) => s.tool === 'escp')?.medianSeconds ?? null
  for (const s of byTool) s.escpSpeedup = s.medianSeconds === null || escp === null ? null : s.medianSeconds / escp
  return byTool
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
  return { cp: await first('cp', ['--version']), rsync: await first('rsync', ['--version']), ssh: await first('ssh', ['-V']) }
}

function renderSection(report: TransferReport, jsonFile: string): string {
  const { machine, method } = report
  const tables = report.cells.flatMap((cell) => {
    const escp = cell.stats.find((s) => s.tool === 'escp')
    const rows = cell.stats.map((s) => [
      s.tool,
      `${s.runsOk}/${s.runs}`,
      fixed(s.medianSeconds),
      fixed(s.minSeconds),
      fixed(s.maxSeconds),
      s.mbPerSecond === null ? '' : Math.round(s.mbPerSecond).toString(),
      fixed(s.medianCpuSeconds),
      s.maxRssKiB === null ? '' : Math.round(s.maxRssKiB / 1024).toString(),
      fixed(s.medianOthersCpuSeconds),
      s.tool === 'escp' || s.escpSpeedup === null ? '' : `${s.escpSpeedup.toFixed(2)}×`,
    ])
    const failures = cell.runs.filter((r) => !r.ok).map((r) => `- ${r.tool} run ${r.run} failed: ${r.error}`)
    return [
      `### ${cell.title}`,
      '',
      `${cell.dataset.files} file${cell.dataset.files > 1 ? 's' : ''}, ${cell.dataset.bytes} bytes${escp?.medianSeconds ? '' : '; escp has no successful run, so no ratios'}.`,
      '',
      markdownTable(
        [
          { header: 'tool' },
          { header: 'runs ok' },
          { header: 'median s', align: 'right' },
          { header: 'min s', align: 'right' },
          { header: 'max s', align: 'right' },
          { header: 'MB/s', align: 'right' },
          { header: 'median CPU s', align: 'right' },
          { header: 'peak RSS MiB', align: 'right' },
          { header: "median others' CPU s", align: 'right' },
          { header: 'escp speed-up (tool s ÷ escp s)', align: 'right' },
        ],
        rows,
      ),
      ...(failures.length ? ['', ...failures] : []),
      '',
    ]
  })
  const profiles = report.cells.flatMap((cell) => {
    const escpRuns = cell.runs.filter((r) => r.tool === 'escp' && r.ok && r.escp)
    const med = median(escpRuns.map((r) => r.wallSeconds))
    const pick = escpRuns.find((r) => r.wallSeconds === med) ?? escpRuns[0]
    return pick?.escp ? pick.escp.threads.map((p) => ({ run: `${cell.id}, run ${pick.run}`, role: p.role, wallSeconds: pick.wallSeconds, profile: p })) : []
  })
  const targetLines = report.targets.map(
    (t) => `- ${t.text}: ${t.escpSpeedup === null ? 'not measured' : `escp ${t.escpSpeedup.toFixed(2)}× (median against median), **${t.met ? 'met' : 'not met'}**`}`,
  )
  return [
    `## ${SUITE}`,
    '',
    `Measured ${report.date} by \`npm run bench -- ${SUITE}\` in ${Math.round(report.durationSeconds / 60)} min; data: \`${jsonFile}\`.`,
    '',
    machineLine(machine),
    `- Node ${machine.node}; ${report.tools.cp}; ${report.tools.rsync}; ${report.tools.ssh}`,
    loadLine(report),
    sourceLine(report.source),
    `- Datasets in \`${method.dataDir}\`, ${method.datasetsGenerated ? `generated by this run in ${Math.round(method.generateSeconds)} s` : 'reused from an earlier run'}; the sources are read from the page cache (hashed just before).`,
    '',
    `${method.runs} run${method.runs > 1 ? 's' : ''} of each tool per case, the tools taking turns; each copy goes to a new name, \`sync\` runs before each run (not timed), and every copy is checked against the source (sha256 of the file; for a tree, sha256 over the sorted relative paths, sizes and contents). Copies are removed right after their run, except in the ext4 small-files case, where they stay until the case ends: this ext4 has no journal, and such an ext4 skips recently freed inodes when it allocates new ones, reading each one's inode to find out (\`recently_deleted()\` in its inode allocator, seen with perf); in runs that removed each copy at once, \`cp -r\` of the tree took 7.9 s where it had taken 0.4 s. Figures are over the successful runs.`,
    '',
    ...tables,
    '**Targets** (from the issue):',
    '',
    ...targetLines,
    '',
    'How each tool ran and what its figures cover:',
    '',
    '- **cp**: `cp SRC DST`, `cp -r SRC DST`.',
    `- **scp**: \`scp -q -c ${method.scpCipher} -F CONFIG [-r] SRC user@127.0.0.1:DST\` through a private sshd started by the suite (the end-to-end tests' \`test/helpers/sshd.ts\`: its own host key and port, a throwaway client key; CONFIG sets the port, the key, \`StrictHostKeyChecking no\`, \`UserKnownHostsFile /dev/null\`, \`BatchMode yes\`). OpenSSH 9's scp speaks SFTP to the server.`,
    `- **rsync**: \`rsync [-r] SRC[/] -e 'ssh -F CONFIG' user@127.0.0.1:DST\`, with ssh's default cipher (${method.rsyncSshCipher} here).`,
    `- **escp**: \`copy({sources: [SRC], destination: DST, options: {}})\`, \`{recursive: true}\` for the tree (default options otherwise: ${loopbackStreams()} stream(s) (a local copy takes one per two cores, 1 to 4), 1 MiB blocks, aes-128-gcm, xxh64 verification, node-fs engine), called by a small Node script (\`bench/lib/escp-copy.cjs\`); loopback mode: the receiver is a child process, the data crosses encrypted TCP streams on loopback; no ssh is involved.`,
    '- **s**: wall time of the command, GNU time `%e`, start-up included (Node\'s, for escp; the ssh handshake, for scp and rsync). **MB/s**: bytes of the dataset over the median s.',
    '- **CPU s**: user + system CPU of the command\'s process tree, GNU time `%U + %S` (for escp: the sender process with its worker threads and the receiver child that copy() waits for); for scp and rsync plus the server side: the CPU of sshd\'s session processes (sshd, sftp-server, the remote rsync), read from the private sshd\'s children times in /proc once they have exited. **peak RSS**: GNU time `%M`, the largest single process of the command\'s tree (not a sum); the sshd side is not included.',
    `- **others' CPU s**: CPU the rest of the machine used during the run (the median): other people's work on this shared machine, and this suite's own bookkeeping. Before each run the suite waited for a second with at most ${QUIET_BUSY_PERCENT}% of the CPUs busy, up to ${QUIET_WAIT_MS / 1000} s (waited ${Math.round(report.cells.reduce((t, c) => t + c.runs.reduce((u, r) => u + r.quiet.waitedSeconds, 0), 0))} s in all).`,
    `- GLIBC_TUNABLES: copy() gives its receiver child the malloc thresholds from DESIGN.md; the sender process ran with ${method.glibcTunables === null ? 'glibc defaults (GLIBC_TUNABLES unset)' : `GLIBC_TUNABLES=${method.glibcTunables}`}.`,
    '',
    'Where escp\'s CPU went in its median run of each case (per process and thread, sampled from /proc every 0.2 s; "busy" is the main thread\'s CPU over the run\'s wall time; other threads: the stream workers (one per stream) and Node\'s helpers: libuv\'s file-system pool (4 threads, shared by the workers; their CPU is mostly system time) and V8\'s garbage collector):',
    '',
    profileTable(profiles),
  ].join('\n')
}

function fixed(x: number | null): string {
  return x === null ? '' : x.toFixed(2)
}

function progress(line: string): void {
  process.stderr.write(`${line}\n`)
}
