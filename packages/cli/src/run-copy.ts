// From operands to a transfer: local → local in loopback mode, local → remote (push) and
// remote → local (pull) through `ssh host escp server`.
import { connectUnixServer, copy, escpError, isEscpError, pull, push } from '@escp/core'
import type { ServerProcess, SessionLog, TransferOptions, TransferSummary } from '@escp/core'
import type pinoModule from 'pino'
import { sshTarget } from './operands'
import type { CopyPlan } from './plan'
import { ProgressBar, summaryLine } from './progress'
import { explainRemoteFailure, remoteCommand, startRemoteServer } from './ssh'
import { copyStopSignal } from './stop-signals'
import type { SshOptions } from './ssh'

const SILENT: SessionLog = { info() {}, warn() {}, error() {} }

/**
 * --logfile FILE: JSON lines through pino, loaded only then (some 10 ms of every copy's start-up
 * otherwise). Opened before anything is copied, in a directory that must exist, as rsync's
 * --log-file: a mistyped path creates no directories, and one that cannot be written is
 * ESCP_ERR_BAD_ARGUMENT.
 */
export function openClientLog(file: string, verbose: number): SessionLog {
  const pino = require('pino') as typeof pinoModule
  let destination: ReturnType<typeof pino.destination>
  try {
    // sync: opened (or refused) here, and each line on disk before the process exits.
    destination = pino.destination({ dest: file, sync: true })
  } catch (err) {
    // Node's message repeats the path ("EISDIR: illegal operation on a directory, open '/tmp'").
    throw escpError('ESCP_ERR_BAD_ARGUMENT', `cannot write the log '${file}': ${(err as Error).message.split(', ')[0]}`)
  }
  return pino({ level: verbose > 1 ? 'debug' : 'info', base: { pid: process.pid } }, destination)
}

export interface RunSettings {
  /** A Unix socket where `escp server --mgmt` waits, used instead of ssh. */
  mgmt?: string
  quiet: boolean
  bits: boolean
  verbose: number
  /** The --logfile log (openClientLog), if any. */
  log?: SessionLog
  err: NodeJS.WriteStream
}

export async function runPlan(plan: CopyPlan, options: Partial<TransferOptions>, s: RunSettings): Promise<TransferSummary> {
  const log = s.log ?? SILENT
  const bar = !s.quiet && s.err.isTTY ? new ProgressBar(s.err, s.bits) : undefined
  // The paths whose error is on stderr already: the failures after the copy skip them.
  const reported = new Set<string>()
  const onIssue = (i: { path: string; severity: string; error: Error }) => {
    log.warn({ path: i.path, severity: i.severity, error: i.error.message }, 'source issue')
    // -q hides warnings (a skipped FIFO), as scp's does; never an error.
    if (i.severity === 'warning') {
      if (!s.quiet) s.err.write(`${bar ? '\r\x1b[K' : ''}escp: warning: ${i.error.message}\n`)
      return
    }
    reported.add(i.path)
    s.err.write(`${bar ? '\r\x1b[K' : ''}escp: ${i.error.message}\n`)
  }
  const request = { options, onProgress: bar ? (p: Parameters<ProgressBar['update']>[0]) => bar.update(p) : undefined, onIssue, signal: copyStopSignal() }
  log.info({ mode: plan.mode, options: { ...options } }, 'transfer starting')
  let summary: TransferSummary
  let server: ServerProcess | undefined
  try {
    if (plan.mode === 'loopback') {
      if (s.mgmt) throw escpError('ESCP_ERR_BAD_ARGUMENT', '--mgmt needs a remote operand (host:path) on the side the server serves')
      summary = await copy({ ...request, sources: plan.sources, destination: plan.destination })
    } else if (plan.mode === 'push') {
      if (s.verbose > 0) s.err.write(`escp: ssh ${sshTarget(plan.remote)} ${remoteCommand(plan.ssh)}\n`)
      server = s.mgmt ? await connectUnixServer(s.mgmt) : startRemoteServer(sshTarget(plan.remote), plan.ssh, plan.remote.port)
      // The streams ssh's command line told the server to start its workers for (planCopy).
      summary = await push(server, { ...request, options: { ...options, streams: plan.ssh.streams }, sources: plan.sources, destination: plan.remote.path || '.' }, plan.remote.host)
    } else {
      const r = plan.remotes[0]
      if (s.verbose > 0) s.err.write(`escp: ssh ${sshTarget(r)} ${remoteCommand(plan.ssh)}\n`)
      server = s.mgmt ? await connectUnixServer(s.mgmt) : startRemoteServer(sshTarget(r), plan.ssh, r.port)
      summary = await pull(server, { ...request, options: { ...options, streams: plan.ssh.streams }, sources: plan.remotes.map((x) => x.path || '.'), destination: plan.destination }, r.host)
    }
  } catch (err) {
    bar?.finish()
    const host = plan.mode === 'push' ? plan.remote.host : plan.mode === 'pull' ? plan.remotes[0].host : 'localhost'
    const e = server && (isEscpError(err, 'ESCP_ERR_CONTROL_CLOSED') || isEscpError(err, 'ESCP_ERR_TIMEOUT')) ? explainRemoteFailure(err, host, (plan as { ssh: SshOptions }).ssh, server.stderrTail()) : err
    log.error({ code: (e as { code?: string }).code, error: (e as Error).message }, 'transfer failed')
    throw e
  }
  bar?.finish()
  for (const f of summary.failures) log.error({ path: f.path, code: f.error.code, errno: f.error.errno }, 'file failed')
  for (const { failure: f, inside } of failureLines(summary.failures)) {
    if (!reported.has(f.path)) s.err.write(`escp: ${f.path}: ${f.error.message}${inside > 0 ? ` (and ${inside === 1 ? 'the entry' : `the ${inside} entries`} inside it)` : ''}\n`)
  }
  log.info({ ...summary, failures: summary.failures.length, warnings: summary.warnings.length }, 'transfer finished')
  if (!s.quiet) s.err.write(`${summaryLine(summary, s.bits)}\n`)
  return summary
}

type Failure = TransferSummary['failures'][number]

/**
 * One line per failure, except that the entries of a failed directory that failed the same way
 * (same code, errno and call: a destination that is a file, a directory that cannot be made)
 * count on its line rather than take one each; every directory between them must have failed so.
 */
export function failureLines(failures: readonly Failure[]): { failure: Failure; inside: number }[] {
  const byPath = new Map(failures.map((f) => [f.path, f]))
  const lines = new Map<string, { failure: Failure; inside: number }>()
  const alike = (a: Failure, b: Failure) => a.error.code === b.error.code && a.error.errno === b.error.errno && a.error.syscall === b.error.syscall
  for (const f of failures) {
    let root: Failure | undefined
    for (let at = f.path.lastIndexOf('/'); at > 0; at = f.path.lastIndexOf('/', at - 1)) {
      const up = byPath.get(f.path.slice(0, at))
      if (!up || !alike(up, f)) break
      root = up
    }
    if (root) {
      const line = lines.get(root.path) ?? { failure: root, inside: 0 }
      line.inside++
      lines.set(root.path, line)
    } else if (!lines.has(f.path)) lines.set(f.path, { failure: f, inside: 0 })
  }
  return [...lines.values()]
}
