// How fast the escp command starts: `escp -V`, `escp --help`, `escp engines` and a local copy
// of one byte (both of its processes, the session and the verified copy), each run several
// times in a row; the CLI issue's target is `escp --version` under 0.3 s. With a private sshd,
// also a one-byte push through it, beside scp's and a bare `ssh true`: what a copy to a remote
// host costs before any data, and how much of it is ssh's own.
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { integerOption, parseSuiteArgs } from '../lib/args'
import { describeMachine, loadLine, machineLine, startRun } from '../lib/machine'
import type { MachineInfo, RunConditions } from '../lib/machine'
import { publishResults } from '../lib/results'
import { startBenchSshd } from '../lib/sshd'
import type { BenchSshd } from '../lib/sshd'
import { median } from '../lib/stats'
import { withTeardown } from '../lib/teardown'

const SUITE = 'startup'
const ESCP_CLI = path.resolve(__dirname, '..', '..', 'packages', 'cli', 'bin', 'run.js')
const DEFAULT_RUNS = 10
const TARGET_SECONDS = 0.3
interface Command {
  name: string
  /** The program: the escp command (`node packages/cli/bin/run.js`) unless named. */
  file?: string
  /** Its arguments, made anew for each run (in `dir`, a scratch directory of the suite's). */
  args: (dir: string, run: number) => string[]
}

const COMMANDS: readonly Command[] = [
  { name: 'escp -V', args: () => ['-V'] },
  { name: 'escp --help', args: () => ['--help'] },
  { name: 'escp engines', args: () => ['engines'] },
  { name: 'escp -q SRC DST (one byte, local)', args: (dir, run) => ['-q', path.join(dir, 'one-byte'), path.join(dir, `copy-${run}`)] },
]

/** Through the private sshd: escp's push of one byte (the remote side is this checkout's escp, -D), scp's, and ssh alone. */
function sshCommands(sshd: BenchSshd): Command[] {
  return [
    { name: 'escp -q SRC host:DST (one byte, through sshd)', args: (dir, run) => ['-q', ...sshd.sshOptions, '-D', ESCP_CLI, path.join(dir, 'one-byte'), `${sshd.target}:${path.join(dir, `pushed-${run}`)}`] },
    { name: 'scp -q SRC host:DST (one byte, through sshd)', file: 'scp', args: (dir, run) => ['-q', ...sshd.sshOptions, path.join(dir, 'one-byte'), `${sshd.target}:${path.join(dir, `scp-${run}`)}`] },
    { name: 'ssh host true (through sshd)', file: 'ssh', args: () => [...sshd.sshOptions, sshd.target, 'true'] },
  ]
}

export const usage = `  --runs N    runs of each command (default ${DEFAULT_RUNS})`

interface StartupReport {
  machine: MachineInfo
  conditions: RunConditions
  runs: number
  commands: { name: string; seconds: number[]; medianSeconds: number | null }[]
  /** Why the rows through sshd are missing, if they are. */
  sshdMissing?: string | null
}

function timeOnce(c: Command, args: string[]): Promise<number> {
  const [file, argv] = c.file ? [c.file, args] : [process.execPath, [ESCP_CLI, ...args]]
  const started = process.hrtime.bigint()
  return new Promise((resolve, reject) => {
    execFile(file, argv, { env: { ...process.env, ESCP_CONFIG: '/dev/null' } }, (err) => {
      if (err) reject(new Error(`${c.name} failed: ${err.message}`))
      else resolve(Number(process.hrtime.bigint() - started) / 1e9)
    })
  })
}

export async function run(args: readonly string[] = []): Promise<void> {
  const opts = parseSuiteArgs(SUITE, args, { runs: { type: 'string' } })
  const runs = integerOption(SUITE, 'runs', opts.runs, DEFAULT_RUNS)
  const clock = startRun()
  const commands: StartupReport['commands'] = []
  let sshdMissing: string | null = null
  await withTeardown(async (teardown) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'escp-startup-'))
    teardown.add(`remove ${dir}`, () => fs.rmSync(dir, { recursive: true, force: true }))
    fs.writeFileSync(path.join(dir, 'one-byte'), 'x')
    let remote: Command[] = []
    try {
      remote = sshCommands(await startBenchSshd(teardown))
    } catch (err) {
      sshdMissing = (err as Error).message
      console.log(`no rows through sshd: ${sshdMissing}`)
    }
    for (const c of [...COMMANDS, ...remote]) {
      await timeOnce(c, c.args(dir, -1)) // the first run warms the page cache; not counted
      const seconds: number[] = []
      for (let i = 0; i < runs; i++) seconds.push(await timeOnce(c, c.args(dir, i)))
      commands.push({ name: c.name, seconds, medianSeconds: median(seconds) })
      console.log(`${c.name}: median ${median(seconds)?.toFixed(3)} s over ${runs} runs`)
    }
  })
  const report: StartupReport = { machine: describeMachine(), conditions: clock.finish(), runs, commands, sshdMissing }
  publishResults(SUITE, clock.startedAt, report, renderSection)
}

export function renderSection(report: StartupReport, jsonFile: string): string {
  const version = report.commands.find((c) => c.name === 'escp -V')?.medianSeconds ?? null
  return [
    '## Start-up of the escp command',
    '',
    `Measured ${report.conditions.date} by \`npm run bench -- ${SUITE}\`; data: \`${jsonFile}\`.`,
    '',
    '| command | runs | median s | min s | max s |',
    '|---|---:|---:|---:|---:|',
    ...report.commands.map((c) => `| \`${c.name}\` | ${c.seconds.length} | ${c.medianSeconds?.toFixed(3) ?? '-'} | ${Math.min(...c.seconds).toFixed(3)} | ${Math.max(...c.seconds).toFixed(3)} |`),
    '',
    `**Target**: \`escp --version\` under ${TARGET_SECONDS} s: ${version === null ? 'not measured' : `${version.toFixed(3)} s, **${version < TARGET_SECONDS ? 'met' : 'not met'}**`}.`,
    '',
    '- Each command is `node packages/cli/bin/run.js ARGS` started by the suite (wall time from spawn to exit, Node\'s own start included), once to warm the page cache and then the given number of times in a row; ESCP_CONFIG=/dev/null. The copy goes from a file of one byte to a new name in the same scratch directory under the system\'s temporary directory: it starts the command and its loopback receiver child, runs a session with its stream workers, and verifies the file.',
    report.sshdMissing
      ? `- No rows through sshd: ${report.sshdMissing}.`
      : "- Through sshd: the transfer suite's private sshd on 127.0.0.1 (its own host key and port, a throwaway client key; `-F CONFIG`). escp pushes the byte with its defaults over ssh (one stream: a copy that asks for no stream count opens no more than its files make blocks), and `-D` runs this checkout's `escp server` on the far side; scp (OpenSSH 9: SFTP) pushes the same byte; `ssh host true` is ssh's own share of both: the connection, the key exchange and a remote command. Both ends share this machine's cores, so the far side's start-up competes with this side's.",
    machineLine(report.machine),
    loadLine(report.conditions),
  ].join('\n')
}
