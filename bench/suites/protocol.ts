// The data plane without disks: escp's encrypted streams on the loopback interface beside
// iperf3 (plain TCP, C) in the same run. Two escp paths are measured: SecureStream on one
// thread (both ends of a session in this process, every record sealed and opened on the main
// thread), and the real transfer, copy() with the dummy engine on both sides (a sender
// process with a worker thread per stream, a receiver child process with the same).
import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { PassThrough } from 'node:stream'
import { loadPlugins, protocol, sessionRequest, withDefaults } from '@escp/core'
import type { PluginRegistry } from '@escp/core'
import { integerOption, parseSuiteArgs } from '../lib/args'
import { runEscpCopy } from '../lib/escp-run'
import type { EscpRun } from '../lib/escp-run'
import { IPERF3_INSTALL_HINT, iperf3Version, runIperf3 } from '../lib/iperf3'
import { QUIET_BUSY_PERCENT, busySeconds, describeMachine, loadLine, machineLine, readCpuTimes, startRun, waitForQuiet } from '../lib/machine'
import type { MachineInfo, QuietWait, RunConditions } from '../lib/machine'
import { freePort } from '../lib/ports'
import { ThreadSampler } from '../lib/proc'
import type { ProcessProfile } from '../lib/proc'
import { publishResults } from '../lib/results'
import { sourceLine, sourceState } from '../lib/source-state'
import type { SourceState } from '../lib/source-state'
import { formatRate, markdownTable, profileTable } from '../lib/table'
import { withTeardown } from '../lib/teardown'

const SUITE = 'protocol'
const GIB = 2 ** 30
const BLOCK_BYTES = 2 ** 20
const STREAM_COUNTS = [1, 4] as const
const DEFAULT_GIB = 4
const CIPHER = 'aes-128-gcm'
/** Longest wait for neighbours' work to calm down before a row. */
const QUIET_WAIT_MS = 30_000
/** The issue's target: 4 encrypted streams reach at least this share of iperf3's single stream. */
const TARGET_SHARE_OF_IPERF3 = 1 / 3

export const usage = `  --gib N   data per row, in GiB (default ${DEFAULT_GIB})`

type RowKind = 'iperf3' | 'secure-stream' | 'copy'

interface Row extends Measured {
  kind: RowKind
  streams: number
  label: string
  /** How long the suite waited for neighbours' work to calm down before the row. */
  quiet: QuietWait
}

/** What a row's measurement found. */
interface Measured {
  /** Null when the row could not run; `error` says why. */
  bytes: number | null
  seconds: number | null
  gbPerSecond: number | null
  /** User + system CPU seconds of every process involved (see the method notes). */
  cpuSeconds: number | null
  cpuSecondsPerGiB: number | null
  /** For copy(): the data phase alone (the sender's elapsed time, after set-up). */
  dataPhaseSeconds?: number
  dataPhaseGbPerSecond?: number
  /** CPU seconds the whole machine was busy over the same time: the rest is other processes. */
  machineBusySeconds?: number | null
  error?: string
  threads?: (ProcessProfile & { role: string })[]
  detail?: unknown
}

export async function run(args: readonly string[] = []): Promise<void> {
  const values = parseSuiteArgs(SUITE, args, { gib: { type: 'string' } })
  const gib = integerOption(SUITE, 'gib', values.gib, DEFAULT_GIB)
  const bytes = gib * GIB
  const clock = startRun()
  const machine = describeMachine()
  const source = sourceState()
  const iperf3 = await iperf3Version()
  progress(`protocol: ${gib} GiB per row; ${machine.cpuModel}, ${machine.nproc} cores, Node ${machine.node}; iperf3: ${iperf3 ?? `not installed (${IPERF3_INSTALL_HINT})`}`)

  const rows: Row[] = []
  /** Measures one row on as quiet a machine as it can get, noting how busy the machine was. */
  const measure = async (kind: RowKind, streams: number, label: string, measureRow: () => Promise<Measured>): Promise<void> => {
    const quiet = await waitForQuiet(QUIET_WAIT_MS)
    const before = readCpuTimes()
    let measured: Measured
    try {
      measured = await measureRow()
    } catch (err) {
      measured = failure((err as Error).message)
    }
    const row: Row = { kind, streams, label, ...measured, quiet, machineBusySeconds: measured.machineBusySeconds ?? busySeconds(before, readCpuTimes()) }
    rows.push(row)
    progress(`  ${label}: ${row.error ?? `${formatRate(row.gbPerSecond as number)} GB/s, ${(row.cpuSecondsPerGiB as number).toFixed(2)} CPU s/GiB`}`)
  }
  const streamsLabel = (n: number) => `${n} stream${n > 1 ? 's' : ''}`

  for (const streams of STREAM_COUNTS) {
    await measure('iperf3', streams, `iperf3, ${streamsLabel(streams)}`, async () => {
      if (iperf3 === null) return failure(`iperf3 is not installed; ${IPERF3_INSTALL_HINT}`)
      const r = await runIperf3(bytes, streams)
      const cpu = r.clientCpuSeconds + r.serverCpuSeconds
      return { bytes: r.bytes, seconds: r.seconds, gbPerSecond: r.gbPerSecond, cpuSeconds: cpu, cpuSecondsPerGiB: cpu / (r.bytes / GIB), detail: r }
    })
  }

  const { registry } = await loadPlugins()
  for (const streams of STREAM_COUNTS) {
    await measure('secure-stream', streams, `escp SecureStream, in-thread, ${streamsLabel(streams)}`, () => measureSecureStreams(registry, streams, bytes))
  }

  await withTeardown(async (teardown) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'escp-bench-protocol-'))
    teardown.add(`remove ${dir}`, () => fs.rmSync(dir, { recursive: true, force: true }))
    // A sparse file: the dummy engine only stat()s it, so its size is all that matters.
    const file = path.join(dir, `sparse-${gib}GiB`)
    fs.writeFileSync(file, '')
    fs.truncateSync(file, bytes)
    const destination = path.join(dir, 'dst')
    fs.mkdirSync(destination)
    for (const streams of STREAM_COUNTS) {
      await measure('copy', streams, `escp copy(), dummy engine, ${streamsLabel(streams)}`, async () =>
        copyMeasured(await runEscpCopy({ sources: [file], destination, options: { engine: 'dummy', streams, blockSizeBytes: BLOCK_BYTES } })),
      )
    }
  })

  const iperfSingle = rows.find((r) => r.kind === 'iperf3' && r.streams === 1)?.gbPerSecond ?? null
  const report: ProtocolReport = {
    suite: SUITE,
    ...clock.finish(),
    machine,
    source,
    iperf3,
    method: {
      bytesPerRow: bytes,
      blockSizeBytes: BLOCK_BYTES,
      cipher: CIPHER,
      glibcTunables: process.env.GLIBC_TUNABLES ?? null,
      targetShareOfIperf3Single: TARGET_SHARE_OF_IPERF3,
    },
    iperf3SingleGbPerSecond: iperfSingle,
    rows: rows.map((r) => ({ ...r, ratioToIperf3Single: ratio(r.gbPerSecond, iperfSingle) })),
  }
  publishResults(SUITE, clock.startedAt, report, renderSection)
}

interface ProtocolReport extends RunConditions {
  suite: string
  machine: MachineInfo
  source: SourceState
  iperf3: string | null
  method: { bytesPerRow: number; blockSizeBytes: number; cipher: string; glibcTunables: string | null; targetShareOfIperf3Single: number }
  iperf3SingleGbPerSecond: number | null
  rows: (Row & { ratioToIperf3Single: number | null })[]
}

/** Two control channels joined back to back, as ssh's stdio would join them. */
function controlPair(): { client: protocol.ControlChannel; server: protocol.ControlChannel } {
  const c2s = new PassThrough()
  const s2c = new PassThrough()
  return {
    server: new protocol.ControlChannel(c2s, s2c, { side: 'server' }),
    client: new protocol.ControlChannel(s2c, c2s, { side: 'client' }),
  }
}

/**
 * Both ends of a session in this process: the client pushes `bytes` of 1 MiB Block records
 * spread over `streams` data streams, the server reads them with next(). Every seal and open
 * runs on this (the main) thread.
 */
async function measureSecureStreams(registry: PluginRegistry, streams: number, bytes: number): Promise<Measured> {
  const perStream = Math.floor(bytes / streams / BLOCK_BYTES) * BLOCK_BYTES
  const port = await freePort()
  const options = withDefaults({ streams, blockSizeBytes: BLOCK_BYTES, cipher: CIPHER, checksum: 'none', engine: 'dummy', port, portRange: 10, bindAddress: '127.0.0.1' })
  const { client, server } = controlPair()
  let all: protocol.SecureStream[] = []
  let sampler: ThreadSampler | undefined
  try {
    const [s, c] = await withTimeout(
      Promise.all([
        protocol.acceptServerSession(server, registry, { software: 'escp bench', defaultAddress: '127.0.0.1' }),
        protocol.startClientSession(client, registry, sessionRequest(options, 'receiver', ['/dev/null'], 1, 'dummy')),
      ]),
      60_000,
      'opening the session',
    )
    all = [c.meta, ...c.data, s.meta, ...s.data]
    const payload = crypto.randomBytes(BLOCK_BYTES)
    sampler = new ThreadSampler(process.pid)
    const machineBefore = readCpuTimes()
    const cpuBefore = process.cpuUsage()
    const start = process.hrtime.bigint()
    const sending = c.data.map(async (stream, i) => {
      for (let offset = 0; offset < perStream; offset += BLOCK_BYTES) {
        await stream.send({ type: protocol.RecordType.Block, flags: 0, rawLength: BLOCK_BYTES, fileId: BigInt(i), offset: BigInt(offset) }, payload)
      }
      await stream.end()
    })
    const receiving = s.data.map(async (stream) => {
      let received = 0
      for (let r = await stream.next(); !r.done; r = await stream.next()) received += r.value.payload.byteLength
      return received
    })
    const [, counts] = await withTimeout(Promise.all([Promise.all(sending), Promise.all(receiving)]), timeoutFor(bytes), `${streams} SecureStreams moving ${bytes} bytes`)
    const seconds = Number(process.hrtime.bigint() - start) / 1e9
    const cpu = process.cpuUsage(cpuBefore)
    const machineBusySeconds = busySeconds(machineBefore, readCpuTimes())
    // This process only: its children (tsx's compiler service) have nothing to do with the row.
    const threads = sampler
      .stop()
      .filter((p) => p.pid === process.pid)
      .map((p) => ({ ...p, role: 'both ends (this process)' }))
    const received = counts.reduce((a, b) => a + b, 0)
    if (received !== perStream * streams) throw new Error(`the receiving side got ${received} bytes of the ${perStream * streams} sent`)
    await withTimeout(closeSession(c, s), 30_000, 'closing the session')
    const cpuSeconds = (cpu.user + cpu.system) / 1e6
    return { bytes: received, seconds, gbPerSecond: received / seconds / 1e9, cpuSeconds, cpuSecondsPerGiB: cpuSeconds / (received / GIB), machineBusySeconds, threads }
  } finally {
    sampler?.stop()
    for (const stream of all) stream.destroy()
    client.close()
    server.close()
  }
}

/** The END handshake on every stream, as a transfer ends a session. */
async function closeSession(c: protocol.Session, s: protocol.Session): Promise<void> {
  for (const stream of s.data) await stream.end()
  for (const stream of c.data) await stream.next()
  await c.meta.end()
  await s.meta.next()
  await s.meta.end()
  await c.meta.next()
  for (const stream of [c.meta, ...c.data, s.meta, ...s.data]) stream.close()
}

function copyMeasured(r: EscpRun): Measured {
  const diagnostics = { threads: r.threads, detail: { timed: { ...r.timed, stdout: undefined }, copy: r.copy } }
  if (r.error !== null || r.copy === null) return { ...failure(r.error ?? 'no report'), ...diagnostics }
  const bytes = r.copy.summary.bytes
  const cpuSeconds = r.timed.userSeconds + r.timed.systemSeconds
  const dataPhaseSeconds = r.copy.summary.elapsedMs / 1000
  return {
    ...diagnostics,
    bytes,
    seconds: r.copy.wallSeconds,
    gbPerSecond: bytes / r.copy.wallSeconds / 1e9,
    cpuSeconds,
    cpuSecondsPerGiB: cpuSeconds / (bytes / GIB),
    dataPhaseSeconds,
    dataPhaseGbPerSecond: bytes / dataPhaseSeconds / 1e9,
  }
}

function failure(error: string): Measured {
  return { bytes: null, seconds: null, gbPerSecond: null, cpuSeconds: null, cpuSecondsPerGiB: null, error }
}

function ratio(x: number | null, of: number | null): number | null {
  return x === null || of === null || of === 0 ? null : x / of
}

/** Generous: a rate under 20 MB/s is not slow, it is stuck. */
function timeoutFor(bytes: number): number {
  return 30_000 + (bytes / 20e6) * 1000
}

async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} did not finish within ${Math.round(ms / 1000)} s (a hang?)`)), ms)
      }),
    ])
  } finally {
    clearTimeout(timer)
  }
}

function renderSection(report: ProtocolReport, jsonFile: string): string {
  const { machine, method, rows } = report
  const gib = method.bytesPerRow / GIB
  const fourCopy = rows.find((r) => r.kind === 'copy' && r.streams === 4)
  const fourInThread = rows.find((r) => r.kind === 'secure-stream' && r.streams === 4)
  // The target is the transfer's (copy()); the in-thread row shows the record layer alone.
  const verdict = (r: (typeof rows)[number] | undefined, name: string, target: boolean) => {
    if (!r || r.ratioToIperf3Single === null) return `${name}: not measured`
    const dataPhase = r.dataPhaseGbPerSecond === undefined || report.iperf3SingleGbPerSecond === null ? '' : ` (data phase alone: ${(r.dataPhaseGbPerSecond / report.iperf3SingleGbPerSecond).toFixed(2)}×)`
    const judged = target ? `**${r.ratioToIperf3Single >= TARGET_SHARE_OF_IPERF3 ? 'met' : 'not met'}**` : 'information, not the target: every seal and open on one thread'
    return `${name}: ${r.ratioToIperf3Single.toFixed(2)}× iperf3's single stream${dataPhase}, ${judged}`
  }
  const table = markdownTable(
    [
      { header: 'path' },
      { header: 'streams', align: 'right' },
      { header: 's', align: 'right' },
      { header: 'GB/s', align: 'right' },
      { header: 'data-phase GB/s', align: 'right' },
      { header: 'CPU s/GiB', align: 'right' },
      { header: 'others\' CPU s', align: 'right' },
      { header: '× iperf3 1 stream', align: 'right' },
    ],
    rows.map((r) => [
      rowName(r.kind),
      String(r.streams),
      r.seconds === null ? 'error' : r.seconds.toFixed(2),
      r.gbPerSecond === null ? 'error' : formatRate(r.gbPerSecond),
      r.dataPhaseGbPerSecond === undefined ? '' : formatRate(r.dataPhaseGbPerSecond),
      r.cpuSecondsPerGiB === null ? '' : r.cpuSecondsPerGiB.toFixed(2),
      othersCpu(r),
      r.ratioToIperf3Single === null ? '' : `${r.ratioToIperf3Single.toFixed(2)}×`,
    ]),
  )
  const threadTable = profileTable(
    rows.flatMap((r) => (r.threads ?? []).map((p) => ({ run: `${rowName(r.kind)}, ${r.streams}`, role: p.role, wallSeconds: r.seconds, profile: p }))),
  )
  return [
    `## ${SUITE}`,
    '',
    `Measured ${report.date} by \`npm run bench -- ${SUITE}\` in ${Math.round(report.durationSeconds)} s; data: \`${jsonFile}\`.`,
    '',
    machineLine(machine),
    `- Node ${machine.node} (OpenSSL ${machine.nodeOpenssl}); ${report.iperf3 ?? `iperf3 not installed (${IPERF3_INSTALL_HINT})`}`,
    loadLine(report),
    sourceLine(report.source),
    '',
    `Loopback TCP (127.0.0.1), no disk, ${gib} GiB per row, 1 MiB blocks, ${method.cipher}. GB/s is 10^9 bytes of payload per second; CPU s/GiB is the user + system CPU of every process involved, per 2^30 bytes. Each row ran once.`,
    '',
    table,
    '',
    `- **iperf3**: plain TCP, no encryption; \`iperf3 -s -1\` and \`iperf3 -c -n ${method.bytesPerRow} -J [-P 4]\`; s and GB/s from the receiver's side of its JSON; CPU of client and server from GNU time.`,
    `- **SecureStream, in-thread**: one Node process holds both ends of a session (ControlChannel over two PassThrough streams, \`acceptServerSession\` + \`startClientSession\`); the client sends 1 MiB Block records with \`send()\`, the server reads them with \`next()\`. Every seal and every open runs on the **main thread** of that one process: no worker threads, no checksum, no files. CPU: \`process.cpuUsage()\` over the data phase (both ends, kernel TCP time included).`,
    `- **copy(), dummy engine**: the real, multi-process transfer path: \`copy({sources: [a sparse ${gib} GiB file], destination, options: {engine: 'dummy', streams, blockSizeBytes: 1 MiB}})\` run in a Node process of its own; the sender's stream workers (one worker thread per stream) read nothing, digest (xxh64, on by default) and seal; the receiver (a child process, one worker thread per stream) opens, digests and discards. s: the copy() call as its caller sees it, including spawning the receiver, the handshake and starting the workers; data-phase GB/s uses the sender's own elapsed time (after set-up). CPU: GNU time (\`/usr/bin/time -f '%e %U %S %M'\`) of the whole tree: the caller process with its workers and the receiver child it waits for, both Node start-ups included.`,
    `- GLIBC_TUNABLES: copy() gives its receiver child the malloc thresholds from DESIGN.md; the sender process and the in-thread row ran with ${method.glibcTunables === null ? 'glibc defaults (GLIBC_TUNABLES unset)' : `GLIBC_TUNABLES=${method.glibcTunables}`}.`,
    `- others' CPU s: CPU seconds the machine spent busy during the row beyond the row's own processes: other people's work on this shared machine, and this suite's own sampling. Before each row the suite waited for a second with at most ${QUIET_BUSY_PERCENT}% of the CPUs busy, up to ${QUIET_WAIT_MS / 1000} s (${quietLine(rows)}).`,
    '',
    `Target (from the issue): 4 encrypted streams reach at least a third of iperf3's single-stream loopback rate.`,
    '',
    `- ${verdict(fourCopy, 'copy(), dummy engine, 4 streams', true)}`,
    `- ${verdict(fourInThread, 'SecureStream in-thread, 4 streams', false)}`,
    '',
    'Where the CPU went, per process and thread (sampled from /proc every 0.2 s, so a thread\'s last moments before it exits can be missed; "busy" is the main thread\'s CPU over the row\'s s; other threads: for copy() the stream workers (one per stream) and Node\'s helpers (libuv\'s file-system pool, V8\'s garbage collector); for the in-thread rows only the helpers):',
    '',
    threadTable,
    ...rows.filter((r) => r.error).map((r) => `- ${r.label} failed: ${r.error}`),
  ].join('\n')
}

function quietLine(rows: readonly Row[]): string {
  const waits = rows.map((r) => r.quiet)
  const waited = waits.reduce((t, q) => t + q.waitedSeconds, 0)
  const busy = waits.map((q) => q.busyPercent).filter((b): b is number => b !== null)
  return `waited ${waited.toFixed(0)} s in all; CPUs busy in the second before each row: ${busy.length ? busy.map((b) => `${b.toFixed(0)}%`).join(', ') : 'unknown'}`
}

/** CPU the rest of the machine used while the row ran (other people's work, this suite's own bookkeeping). */
function othersCpu(r: Row): string {
  if (r.machineBusySeconds === undefined || r.machineBusySeconds === null || r.cpuSeconds === null) return ''
  return Math.max(0, r.machineBusySeconds - r.cpuSeconds).toFixed(2)
}

function rowName(kind: RowKind): string {
  return kind === 'iperf3' ? 'iperf3 (plain TCP)' : kind === 'secure-stream' ? 'escp SecureStream, in-thread' : 'escp copy(), dummy engine'
}

function progress(line: string): void {
  process.stderr.write(`${line}\n`)
}
