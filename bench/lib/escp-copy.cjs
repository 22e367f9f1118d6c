// Runs one escp copy() in a process of its own: `node escp-copy.cjs '<CopyRequest as JSON>'`.
// The benchmark times this process tree from outside (GNU time: this process with its stream
// worker threads, plus the receiver child that copy() spawns and waits for). From inside it
// reports the copy() call alone: its wall time, this process's CPU and the receiver's CPU
// (the children's times in /proc/self/stat, which count a child once it has been waited for).
// Plain JavaScript on purpose: a TypeScript loader would add its own start-up to the CPU figures.
'use strict'
// As the escp command does (bin/run.js): the V8 flags it runs with, set once the session's
// stream workers run (V8_FLAGS and tierOnceStreamsRun say why and when), so that this row
// measures what `escp a b` runs.
require('@escp/core/loopback').tierOnceStreamsRun()
const fs = require('node:fs')
const { copy } = require('@escp/core')

/** User and system clock ticks of the children this process has waited for. */
function waitedChildrenTicks() {
  const stat = fs.readFileSync('/proc/self/stat', 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return { user: Number(fields[13]), system: Number(fields[14]) }
}

/** An error-bearing entry of the summary, as JSON can carry it. */
function issue(x) {
  return { path: x.path, severity: x.severity, code: x.error.code, message: x.error.message }
}

async function main() {
  const request = JSON.parse(process.argv[2])
  const cpuBefore = process.cpuUsage()
  const childrenBefore = waitedChildrenTicks()
  const start = process.hrtime.bigint()
  const summary = await copy(request)
  const wallSeconds = Number(process.hrtime.bigint() - start) / 1e9
  const cpu = process.cpuUsage(cpuBefore)
  const children = waitedChildrenTicks()
  const report = {
    wallSeconds,
    callerCpuSeconds: { user: cpu.user / 1e6, system: cpu.system / 1e6 },
    receiverCpuTicks: { user: children.user - childrenBefore.user, system: children.system - childrenBefore.system },
    summary: { ...summary, failures: summary.failures.map(issue), warnings: summary.warnings.map(issue) },
  }
  process.stdout.write(`${JSON.stringify(report)}\n`)
}

main().catch((err) => {
  process.stderr.write(`escp-copy: ${err && err.code ? `${err.code}: ` : ''}${err instanceof Error ? err.stack : String(err)}\n`)
  process.exitCode = 1
})
