// escp and scp across an emulated WAN: two network namespaces, A (198.18.0.1) and B
// (198.18.1.1), joined by a link with 20 ms RTT, 0.01% random loss per direction and a 1 Gbit/s
// bottleneck (netem when the kernel has it, else our forwarder, bench/wan/forwarder.c). A
// private sshd runs inside B; from A, escp with 1, 4 and 8 streams and scp (aes128-gcm) push one
// 512 MiB file of random bytes to B, under each TCP congestion control in [cubic, bbr]: with
// cubic a stream's rate falls with loss and RTT and parallel streams multiply it; BBR does not
// back off on random loss (DESIGN.md), so the two say different things about escp's streams.
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { startSshd } from '../../test/helpers/sshd'
import { integerOption, parseSuiteArgs } from '../lib/args'
import { updateChart } from '../lib/chart'
import { ensureBigFile, sha256File } from '../lib/datasets'
import { describeMachine, loadLine, machineLine, startRun, waitForQuiet } from '../lib/machine'
import type { MachineInfo, QuietWait, RunConditions } from '../lib/machine'
import { publishResults, repoPath } from '../lib/results'
import { sourceLine, sourceState } from '../lib/source-state'
import type { SourceState } from '../lib/source-state'
import { timingStats } from '../lib/stats'
import type { TimingStats } from '../lib/stats'
import { TIMING_COLUMNS, markdownTable, timingCells } from '../lib/table'
import { withTeardown } from '../lib/teardown'
import { runTimed, tail } from '../lib/timed-command'
import { allowCongestionControls, availableCongestionControls, netnsUnavailable, restoreAllowedCongestionControls, setCongestionControl, startWan, statsDelta } from '../wan/wan'
import type { ForwarderStats, Wan } from '../wan/wan'

const execFileP = promisify(execFile)

const SUITE = 'wan'
const NS_A = 'escp-wan-a'
const NS_B = 'escp-wan-b'
const DELAY_MS = 10
const LOSS = 0.0001
const RATE_BPS = 1e9
const DEFAULT_RUNS = 2
const DEFAULT_SIZE_MIB = 512
const DEFAULT_DATA_DIR = path.resolve(__dirname, '..', 'data')
const CONGESTION_CONTROLS = ['cubic', 'bbr'] as const
const SCP_CIPHER = 'aes128-gcm@openssh.com'
const ESCP = path.resolve(__dirname, '..', '..', 'packages', 'cli', 'bin', 'run.js')
const QUIET_WAIT_MS = 5_000
const RUN_TIMEOUT_MS = 300_000
const RTT_PINGS = 50

type Tool = 'escp -t 1' | 'escp -t 4' | 'escp -t 8' | 'scp'
const TOOLS: readonly Tool[] = ['escp -t 1', 'escp -t 4', 'escp -t 8', 'scp']
/** The issue's targets: escp's median time this many times shorter than scp's. */
const TARGETS = [
  { tool: 'escp -t 4', factor: 3 },
  { tool: 'escp -t 8', factor: 5 },
] as const

export const usage = [
  `  --runs N     runs of each tool per congestion control (default ${DEFAULT_RUNS})`,
  `  --size MIB   size of the file pushed (default ${DEFAULT_SIZE_MIB})`,
  `  --data DIR   where the file is generated once and then reused (default ${repoPath(DEFAULT_DATA_DIR)}/)`,
].join('\n')

interface RunRecord {
  tool: Tool
  run: number
  command: string
  ok: boolean
  error?: string
  wallSeconds: number
  /** User + system of the client's process tree in A (GNU time); the sshd side in B is not counted. */
  clientCpuSeconds: number
  quiet: QuietWait
  /** What the link did during the run (forwarder only): random losses, bottleneck drops, ring overflows. */
  link: ForwarderStats | null
}

interface ToolStats extends TimingStats {
  tool: Tool
  /** scp's median time over this tool's: above 1, this tool was faster. */
  speedupOverScp: number | null
}

interface CcReport {
  congestionControl: string
  available: boolean
  runs: RunRecord[]
  stats: ToolStats[]
  targets: { text: string; speedup: number | null; met: boolean | null }[]
}

interface WanReport extends RunConditions {
  suite: string
  machine: MachineInfo
  source: SourceState
  tools: Record<string, string>
  link: {
    emulator: Wan['emulator']
    netemUnavailable: string | null
    delayMs: number
    rttMs: number
    loss: number
    rateBps: number
    mtu: number
    /** ping from A to B before the runs. */
    pingRttMs: { min: number; avg: number; max: number; mdev: number } | null
  }
  method: {
    runs: number
    file: string
    bytes: number
    generated: boolean
    scpCipher: string
    /** The host's tcp_allowed_congestion_control before this run extended it (restored at the end); null if unchanged. */
    allowedCongestionControlsBefore: string | null
  }
  congestionControls: CcReport[]
}

export async function run(args: readonly string[] = []): Promise<void> {
  const values = parseSuiteArgs(SUITE, args, { runs: { type: 'string' }, size: { type: 'string' }, data: { type: 'string' } })
  const runs = integerOption(SUITE, 'runs', values.runs, DEFAULT_RUNS)
  const sizeMiB = integerOption(SUITE, 'size', values.size, DEFAULT_SIZE_MIB)
  const dataDir = path.resolve(values.data ?? DEFAULT_DATA_DIR)
  const why = netnsUnavailable()
  if (why) throw new Error(`the wan suite cannot run here: ${why}`)
  const clock = startRun()
  const machine = describeMachine()
  const source = sourceState()
  progress(`wan: ${runs} run(s) of each tool per congestion control; ${machine.cpuModel}, ${machine.nproc} cores, Node ${machine.node}`)

  const report = await withTeardown(async (teardown) => {
    fs.mkdirSync(dataDir, { recursive: true })
    const file = ensureBigFile(dataDir, { name: `random-${sizeMiB}MiB.bin`, bytes: sizeMiB * 2 ** 20 })
    const digest = await sha256File(file.path)
    progress(`file ${file.generated ? 'generated' : 'reused'}: ${file.path} (${file.bytes} bytes)`)

    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'escp-bench-wan-'))
    teardown.add(`remove ${tmp}`, () => fs.rmSync(tmp, { recursive: true, force: true }))
    const wan = await startWan({ nsA: NS_A, nsB: NS_B, delayMs: DELAY_MS, loss: LOSS, rateBps: RATE_BPS })
    teardown.add(`stop the emulated WAN (namespaces ${NS_A}, ${NS_B})`, () => wan.stop())
    progress(`link ${NS_A} ${wan.addressA} ⇄ ${NS_B} ${wan.addressB} by ${wan.emulator}${wan.netemUnavailable ? ` (netem: ${wan.netemUnavailable})` : ''}`)

    const privsepExisted = fs.existsSync('/run/sshd')
    const sshd = await startSshd({ listenAddress: wan.addressB, netns: NS_B })
    if (typeof sshd === 'string') throw new Error(`cannot start a private sshd in ${NS_B}: ${sshd}`)
    if (!privsepExisted) teardown.add('remove /run/sshd', () => fs.rmdirSync('/run/sshd'))
    // Registered after the WAN, so it runs before the namespaces go.
    teardown.add(`stop the private sshd in ${NS_B}`, () => sshd.stop())
    const login = await runTimed('ip', ['netns', 'exec', NS_A, 'ssh', '-F', sshd.configFile, wan.addressB, 'true'], { timeoutMs: 20_000 })
    if (login.exitCode !== 0) throw new Error(`cannot log in to the private sshd in ${NS_B} from ${NS_A}: ${tail(login.stderr)}`)
    const pingRttMs = await pingRtt(wan)
    progress(`ping ${NS_A} → ${NS_B}: ${pingRttMs ? `RTT min/avg/max ${pingRttMs.min}/${pingRttMs.avg}/${pingRttMs.max} ms` : 'unavailable'}`)

    const available = availableCongestionControls()
    const allowedBefore = allowCongestionControls(CONGESTION_CONTROLS.filter((cc) => available.includes(cc)))
    if (allowedBefore !== null) {
      progress(`tcp_allowed_congestion_control was '${allowedBefore}': extended for this run, so that the namespaces may use ${CONGESTION_CONTROLS.join(' and ')}`)
      teardown.add(`restore tcp_allowed_congestion_control to '${allowedBefore}'`, () => restoreAllowedCongestionControls(allowedBefore))
    }
    const ccReports: CcReport[] = []
    for (const cc of CONGESTION_CONTROLS) {
      if (!available.includes(cc)) {
        progress(`${cc}: not available on this kernel (tcp_available_congestion_control: ${available.join(' ')}); skipped`)
        ccReports.push({ congestionControl: cc, available: false, runs: [], stats: [], targets: [] })
        continue
      }
      for (const ns of [NS_A, NS_B]) await setCongestionControl(ns, cc)
      progress(`${cc}:`)
      const records: RunRecord[] = []
      for (let r = 0; r < runs; r++) {
        for (let k = 0; k < TOOLS.length; k++) {
          const tool = TOOLS[(k + r) % TOOLS.length]
          const rec = await measureRun(tool, r + 1, cc, { src: file.path, bytes: file.bytes, digest, destDir: tmp, wan, sshConfig: sshd.configFile })
          records.push(rec)
          const link = rec.link?.aToB
          progress(
            `  ${tool} run ${r + 1}: ${rec.ok ? `${rec.wallSeconds.toFixed(2)} s, ${(file.bytes / rec.wallSeconds / 1e6).toFixed(0)} MB/s` : `FAILED: ${rec.error}`}` +
              (link ? ` (A→B: ${link.lost} lost at random, ${link.droppedBuffer} at the bottleneck, ${link.droppedFull} ring overflows)` : ''),
          )
        }
      }
      const stats = statsOf(records, file.bytes)
      const targets = TARGETS.map((t) => {
        const speedup = stats.find((s) => s.tool === t.tool)?.speedupOverScp ?? null
        return { text: `${t.tool} at least ${t.factor}× as fast as scp`, speedup, met: speedup === null ? null : speedup >= t.factor }
      })
      ccReports.push({ congestionControl: cc, available: true, runs: records, stats, targets })
    }
    const { stderr: sshVersion } = await execFileP('ssh', ['-V'])
    const result: WanReport = {
      suite: SUITE,
      ...clock.finish(),
      machine,
      source,
      tools: { ssh: sshVersion.trim() },
      link: { emulator: wan.emulator, netemUnavailable: wan.netemUnavailable, delayMs: DELAY_MS, rttMs: 2 * DELAY_MS, loss: LOSS, rateBps: RATE_BPS, mtu: wan.options.mtu, pingRttMs },
      method: { runs, file: repoPath(file.path), bytes: file.bytes, generated: file.generated, scpCipher: SCP_CIPHER, allowedCongestionControlsBefore: allowedBefore },
      congestionControls: ccReports,
    }
    return result
  })

  publishResults(SUITE, clock.startedAt, report, renderSection)
  console.log(updateChart())
}

interface Setup {
  src: string
  bytes: number
  digest: string
  destDir: string
  wan: Wan
  sshConfig: string
}

/** One push from A to B: fresh destination, quiet machine, timed, verified, removed. */
async function measureRun(tool: Tool, run: number, cc: string, s: Setup): Promise<RunRecord> {
  const destination = path.join(s.destDir, `${tool.replace(/\W+/g, '')}-${cc}-${run}.bin`)
  await execFileP('sync')
  const quiet = await waitForQuiet(QUIET_WAIT_MS)
  const remote = `${s.wan.addressB}:${destination}`
  const argv =
    tool === 'scp'
      ? ['scp', '-q', '-c', SCP_CIPHER, '-F', s.sshConfig, s.src, remote]
      : [process.execPath, ESCP, '-F', s.sshConfig, '-D', ESCP, '-t', tool.split(' ')[2], '--bind', s.wan.addressB, s.src, remote]
  const before = await s.wan.stats()
  const timed = await runTimed('ip', ['netns', 'exec', s.wan.nsA, ...argv], { env: { ...process.env, ESCP_CONFIG: '/nonexistent' }, timeoutMs: RUN_TIMEOUT_MS })
  const link = statsDelta(before, await s.wan.stats())
  let error: string | undefined
  if (timed.exitCode !== 0) error = `${timed.timedOut ? `timed out after ${RUN_TIMEOUT_MS / 1000} s` : `exit ${timed.exitCode}`}: ${tail(timed.stderr + timed.stdout, 6)}`
  error ??= await verify(destination, s)
  fs.rmSync(destination, { force: true })
  return {
    tool,
    run,
    command: timed.command,
    ok: error === undefined,
    error,
    wallSeconds: timed.wallSeconds,
    clientCpuSeconds: timed.userSeconds + timed.systemSeconds,
    quiet,
    link,
  }
}

async function verify(destination: string, s: Setup): Promise<string | undefined> {
  try {
    const size = fs.statSync(destination).size
    if (size !== s.bytes) return `the copy has ${size} bytes, the source ${s.bytes}`
    if ((await sha256File(destination)) !== s.digest) return 'the copy has the right size but other bytes (sha256 differs)'
  } catch (err) {
    return `cannot read the copy: ${(err as Error).message}`
  }
  return undefined
}

async function pingRtt(wan: Wan): Promise<WanReport['link']['pingRttMs']> {
  const r = await runTimed('ip', ['netns', 'exec', wan.nsA, 'ping', '-n', '-q', '-c', String(RTT_PINGS), '-i', '0.01', wan.addressB], { timeoutMs: 20_000 })
  const m = r.stdout.match(/= ([\d.]+)\/([\d.]+)\/([\d.]+)\/([\d.]+) ms/)
  return m ? { min: Number(m[1]), avg: Number(m[2]), max: Number(m[3]), mdev: Number(m[4]) } : null
}

function statsOf(records: readonly RunRecord[], bytes: number): ToolStats[] {
  const stats = TOOLS.map((tool) => {
    const mine = records.filter((r) => r.tool === tool)
    return {
      tool,
      ...timingStats(mine.filter((r) => r.ok).map((r) => r.wallSeconds), mine.length, bytes),
      speedupOverScp: null as number | null,
    }
  })
  const scp = stats.find((s) => s.tool === 'scp')?.medianSeconds ?? null
  for (const s of stats) s.speedupOverScp = s.medianSeconds === null || scp === null ? null : scp / s.medianSeconds
  return stats
}

/**
 * Where a target asks more of the link than it carries: scp's rate times the factor, against the
 * bottleneck's rate (its payload is less still, by the packets' headers).
 */
function beyondLink(text: string, stats: readonly ToolStats[], bytes: number, rateBps: number): string {
  const factor = TARGETS.find((t) => text.startsWith(`${t.tool} `))?.factor
  const scp = stats.find((s) => s.tool === 'scp')?.medianSeconds ?? null
  if (!factor || scp === null || !rateBps) return ''
  const scpMBps = bytes / scp / 1e6
  const linkMBps = rateBps / 8 / 1e6
  if (factor * scpMBps <= linkMBps) return ''
  return `; beyond this link: ${factor}× scp's ${scpMBps.toFixed(0)} MB/s is ${(factor * scpMBps).toFixed(0)} MB/s, more than the ${linkMBps.toFixed(0)} MB/s its bottleneck carries`
}

function renderSection(report: WanReport, jsonFile: string): string {
  const { link, method } = report
  const rate = link.rateBps ? `${link.rateBps / 1e9} Gbit/s bottleneck per direction (buffer: one rate × RTT product)` : 'no rate limit'
  const tables = report.congestionControls.flatMap((cc) => {
    if (!cc.available) return [`### ${cc.congestionControl}`, '', `Not available on this kernel (not in /proc/sys/net/ipv4/tcp_available_congestion_control): not measured.`, '']
    const rows = cc.stats.map((s) => [
      s.tool,
      ...timingCells(s),
      s.tool === 'scp' || s.speedupOverScp === null ? '' : `${s.speedupOverScp.toFixed(2)}×`,
    ])
    const lossRows = cc.runs.filter((r) => r.link).map((r) => r.link as ForwarderStats)
    const sum = (f: (l: ForwarderStats) => number) => lossRows.reduce((t, l) => t + f(l), 0)
    const failures = cc.runs.filter((r) => !r.ok).map((r) => `- ${r.tool} run ${r.run} failed: ${r.error}`)
    return [
      `### ${cc.congestionControl}`,
      '',
      markdownTable(
        [
          { header: 'tool' },
          ...TIMING_COLUMNS,
          { header: 'escp ÷ scp (scp s ÷ tool s)', align: 'right' },
        ],
        rows,
      ),
      ...(failures.length ? ['', ...failures] : []),
      '',
      ...(lossRows.length
        ? [
            `Link A→B over all ${cc.congestionControl} runs: ${sum((l) => l.aToB.in)} packets in, ${sum((l) => l.aToB.lost)} dropped at random (${((sum((l) => l.aToB.lost) / Math.max(1, sum((l) => l.aToB.in))) * 100).toFixed(4)}%), ${sum((l) => l.aToB.droppedBuffer)} dropped at the full bottleneck buffer, ${sum((l) => l.aToB.droppedFull)} ring overflows.`,
            '',
          ]
        : []),
      ...cc.targets.map((t) => `- Target: ${t.text}: ${t.speedup === null ? 'not measured' : `${t.speedup.toFixed(2)}× (median against median), **${t.met ? 'met' : 'not met'}**`}${beyondLink(t.text, cc.stats, method.bytes, link.rateBps)}`),
      '',
    ]
  })
  const ping = link.pingRttMs
  const allowedNote =
    method.allowedCongestionControlsBefore === null
      ? ''
      : `; a namespace may only pick one that the host lists in \`tcp_allowed_congestion_control\`, which was '${method.allowedCongestionControlsBefore}', so the run extended it and restored it at the end`
  return [
    `## ${SUITE}`,
    '',
    `Measured ${report.date} by \`npm run bench -- ${SUITE}\` in ${Math.round(report.durationSeconds / 60)} min; data: \`${jsonFile}\`.`,
    '',
    machineLine(report.machine),
    `- Node ${report.machine.node}; ${report.tools.ssh}`,
    loadLine(report),
    sourceLine(report.source),
    `- Link: namespaces ${NS_A} (198.18.0.1) and ${NS_B} (198.18.1.1); ${link.delayMs} ms each way (RTT ${link.rttMs} ms${ping ? `; ping measured min/avg/max ${ping.min}/${ping.avg}/${ping.max} ms` : ''}), ${link.loss * 100}% random loss per packet in each direction, ${rate}, MTU ${link.mtu}; by ${link.emulator === 'netem' ? 'netem on a veth pair' : `our forwarder (\`bench/wan/forwarder.c\`, a TUN device in each namespace)${link.netemUnavailable ? `, since ${link.netemUnavailable}` : ''}`}.`,
    `- The file: \`${method.file}\`, ${method.bytes} bytes of random data, ${method.generated ? 'generated by this run' : 'reused'}, read from the page cache.`,
    '',
    `${method.runs} run${method.runs > 1 ? 's' : ''} of each tool per congestion control, the tools taking turns; the congestion control is set in both namespaces (\`sysctl net.ipv4.tcp_congestion_control\`${allowedNote}). Each copy goes to a new name on the same disk, \`sync\` runs before each run (not timed), and each copy is checked by sha256 and then removed.`,
    '',
    `- **escp -t N**: \`ip netns exec ${NS_A} node packages/cli/bin/run.js -F CONFIG -D <abs>/packages/cli/bin/run.js -t N --bind 198.18.1.1 FILE 198.18.1.1:DEST\`: the receiver is \`escp server\`, started over ssh by a private sshd inside ${NS_B} (\`test/helpers/sshd.ts\`, listening on 198.18.1.1); data on N encrypted TCP streams (aes-128-gcm, 1 MiB blocks, xxh64 verification).`,
    `- **scp**: \`ip netns exec ${NS_A} scp -q -c ${method.scpCipher} -F CONFIG FILE 198.18.1.1:DEST\` to the same sshd (OpenSSH 9's scp speaks SFTP).`,
    '- **s**: wall time of the command (GNU time `%e`), ssh handshake and start-up included. **MB/s**: file bytes over the median s. **escp ÷ scp**: scp\'s median time over the tool\'s.',
    '',
    ...tables,
  ].join('\n')
}

function progress(line: string): void {
  process.stderr.write(`${line}\n`)
}
