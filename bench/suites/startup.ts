// How fast the escp command starts: `escp -V`, `escp --help`, `escp engines` and a local copy
// of one byte (both of its processes, the session and the verified copy), each run several
// times in a row; the CLI issue's target is `escp --version` under 0.3 s.
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { integerOption, parseSuiteArgs } from '../lib/args'
import { describeMachine, loadLine, machineLine, startRun } from '../lib/machine'
import type { MachineInfo, RunConditions } from '../lib/machine'
import { publishResults } from '../lib/results'
import { median } from '../lib/stats'

const SUITE = 'startup'
const ESCP_CLI = path.resolve(__dirname, '..', '..', 'packages', 'cli', 'bin', 'run.js')
const DEFAULT_RUNS = 10
const TARGET_SECONDS = 0.3
/** A command, or one made anew for each run (in `dir`, a scratch directory of the suite's). */
const COMMANDS: readonly { name: string; args: (dir: string, run: number) => string[] }[] = [
  { name: 'escp -V', args: () => ['-V'] },
  { name: 'escp --help', args: () => ['--help'] },
  { name: 'escp engines', args: () => ['engines'] },
  { name: 'escp -q SRC DST (one byte, local)', args: (dir, run) => ['-q', path.join(dir, 'one-byte'), path.join(dir, `copy-${run}`)] },
]

export const usage = `  --runs N    runs of each command (default ${DEFAULT_RUNS})`

interface StartupReport {
  machine: MachineInfo
  conditions: RunConditions
  runs: number
  commands: { name: string; seconds: number[]; medianSeconds: number | null }[]
}

function timeOnce(args: string[]): Promise<number> {
  const started = process.hrtime.bigint()
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [ESCP_CLI, ...args], { env: { ...process.env, ESCP_CONFIG: '/dev/null' } }, (err) => {
      if (err) reject(new Error(`escp ${args.join(' ')} failed: ${err.message}`))
      else resolve(Number(process.hrtime.bigint() - started) / 1e9)
    })
  })
}

export async function run(args: readonly string[] = []): Promise<void> {
  const opts = parseSuiteArgs(SUITE, args, { runs: { type: 'string' } })
  const runs = integerOption(SUITE, 'runs', opts.runs, DEFAULT_RUNS)
  const clock = startRun()
  const commands: StartupReport['commands'] = []
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'escp-startup-'))
  try {
    fs.writeFileSync(path.join(dir, 'one-byte'), 'x')
    for (const c of COMMANDS) {
      await timeOnce(c.args(dir, -1)) // the first run warms the page cache; not counted
      const seconds: number[] = []
      for (let i = 0; i < runs; i++) seconds.push(await timeOnce(c.args(dir, i)))
      commands.push({ name: c.name, seconds, medianSeconds: median(seconds) })
      console.log(`${c.name}: median ${median(seconds)?.toFixed(3)} s over ${runs} runs`)
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
  const report: StartupReport = { machine: describeMachine(), conditions: clock.finish(), runs, commands }
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
    machineLine(report.machine),
    loadLine(report.conditions),
  ].join('\n')
}
