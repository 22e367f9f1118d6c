// Server processes on the other end of a control channel: ssh's, and the loopback child. This
// module loads nothing but Node's own and escp's errors, environment names, plugin-option
// parsing, transfer defaults and worker boot: the escp command starts the loopback child (and
// its own stream workers), or ssh, from it before it loads anything else, so that their start-up
// overlaps its own.
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import os from 'node:os'
import path from 'node:path'
import type { Readable, Writable } from 'node:stream'
import { setFlagsFromString } from 'node:v8'
import { BOOT_STREAMS_ENV, CPUMASK_ENV, LOGFILE_ENV, PLUGIN_OPTIONS_ENV, PLUGINS_ENV } from '../env-names'
import { pluginOptionsFromEnv } from '../plugins/options'
import type { PluginOptionValue } from '../plugins/options'
export { discardPrestartedWorkers, prestartServerWorkers, prestartStreamWorkers } from './worker-boot'
// What the escp command's early start reads and builds ssh's command line with, without the rest of escp.
export { escpError, isEscpError } from '../errors'
export type { EscpError } from '../errors'
export { BOOT_STREAMS_ENV }
export { DEFAULT_OPTIONS } from './options'
export { streamsFor } from './streams-for'

const SERVER_MAIN = path.join(__dirname, 'server-main.js')

/**
 * node:crypto allocates a fresh buffer per record; with glibc's default thresholds each one is
 * an mmap/munmap pair and its page faults. Raising them (measured: ~30% less CPU at the
 * receiver) only works from the environment a process starts with, so the child gets it.
 */
export const MALLOC_TUNABLES = 'glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=268435456'

/**
 * V8 flags for escp's own processes: the escp command asks for them as it starts
 * (tierOnceStreamsRun), and so do the loopback child and `escp server`. A function is optimized
 * by TurboFan once it has run about 15× more of its bytecode than Node 20's V8 asks by default
 * (67,584). A transfer's JavaScript is per-file and per-record bookkeeping spread over many
 * functions on four threads; with the default, V8's background threads spent a fifth of the CPU
 * of a copy of 10,000 small files compiling functions that then ran for less time than their
 * compilation took (perf, by thread). Measured on 2 cores, runs taking turns: 10,000 files of
 * 1-64 KiB 1.54 s and 2.81 CPU s → 1.44 s and 2.58; a 1 GiB file 1.80 s and 2.62 CPU s → 1.77 s
 * and 2.51. Set with v8.setFlagsFromString, which passes over a flag a later V8 no longer knows.
 */
export const V8_FLAGS: readonly string[] = ['--interrupt-budget=1000000']

/** Whether this process asked for V8_FLAGS, and whether they are set: shared by every copy of this module it loads. */
const TIERING = Symbol.for('escp.v8.tiering')
const tiering = globalThis as unknown as { [TIERING]?: 'asked' | 'set' }

/**
 * Asks that V8_FLAGS be set in this process once its first session's stream workers run
 * (tierIfAsked, as the links start), not now. Node's own modules come with code compiled ahead
 * of time for V8's default flags; with any flag set, V8 refuses that code and compiles each
 * module again as it loads, in this process and in every worker thread started after: measured,
 * loading node:crypto, net, worker_threads and four more took 4.7 ms with the defaults and 11.9
 * ms after the flag, and a worker thread's start 20 ms more CPU. Set once the workers run, the
 * flags tier the transfer's code and cost the start-up nothing. Measured on 2 cores, a one-byte
 * local copy (10 runs each, taking turns): 0.28 → 0.26 s through copy(), 0.32 → 0.30 s and
 * 0.525 → 0.495 CPU s through the escp command. Only escp's own processes ask: a program that
 * embeds the core keeps its V8 as it is.
 */
export function tierOnceStreamsRun(): void {
  tiering[TIERING] ??= 'asked'
}

/** Sets V8_FLAGS if this process asked for them (tierOnceStreamsRun) and they are not set yet. */
export function tierIfAsked(): void {
  if (tiering[TIERING] !== 'asked') return
  tiering[TIERING] = 'set'
  for (const flag of V8_FLAGS) setFlagsFromString(flag)
}

/**
 * Streams of a local copy when none are asked for: one per two cores, 1 to 4. Both ends share
 * the machine and loopback has no latency to hide, so more streams only add threads; measured on
 * 2 cores (2 GiB, 3 runs each): 1 stream 3.2 s median and 157 MiB peak RSS, 4 streams 3.5 s and 310 MiB.
 */
export function loopbackStreams(cores: number = os.availableParallelism()): number {
  return Math.max(1, Math.min(4, Math.floor(cores / 2)))
}

/** A process serving the other side of a session on its stdin/stdout. */
export interface ServerProcess {
  stdout: Readable
  stdin: Writable
  /** The end of what it wrote to stderr (ssh's and the server's own messages). */
  stderrTail(): string
  exited: Promise<number | null>
  kill(): void
}

interface SpawnedServer extends ServerProcess {
  child: ChildProcess
}

function start(command: string, args: readonly string[], env: NodeJS.ProcessEnv): SpawnedServer {
  const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], env })
  let stderr = ''
  child.stderr?.setEncoding('utf8')
  child.stderr?.on('data', (s: string) => (stderr = (stderr + s).slice(-8192)))
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => resolve(code))
    child.once('error', (err) => {
      stderr += `\n${err.message}`
      resolve(127)
    })
  })
  child.stdin?.on('error', () => {})
  return {
    child,
    stdout: child.stdout as Readable,
    stdin: child.stdin as Writable,
    stderrTail: () => stderr.trim(),
    exited,
    kill: () => void child.kill('SIGTERM'),
  }
}

/** Starts `command args` as a server process (ssh, or the loopback child). */
export function spawnServer(command: string, args: readonly string[], env: NodeJS.ProcessEnv = process.env): ServerProcess {
  return takePrestartedRemoteServer(command, args) ?? serverOf(start(command, args, env))
}

function serverOf({ child: _child, ...server }: SpawnedServer): ServerProcess {
  return server
}

/** Where a remote server started early waits (its command line as JSON), shared by every copy of this module a process loads. */
const PRESTARTED_REMOTE = Symbol.for('escp.remote.prestarted')
const remoteRegistry = globalThis as unknown as { [PRESTARTED_REMOTE]?: { key: string; server: SpawnedServer } }

/**
 * Starts `command args` (ssh, with the remote `escp server` as its command) now, for a copy to
 * or from a remote host about to be made: ssh's connection then overlaps the command's own
 * start-up. spawnServer takes it when it is asked for the very same command line; until then it
 * holds nothing open in this process, and a command that exits without copying (a usage error)
 * stops it as it exits: ssh must not go on to ask for a password after escp has said why it
 * stopped.
 */
export function prestartRemoteServer(command: string, args: readonly string[]): void {
  discardPrestartedRemoteServer()
  const server = start(command, args, process.env)
  holdsProcess(server.child, false)
  remoteRegistry[PRESTARTED_REMOTE] = { key: JSON.stringify([command, ...args]), server }
  process.once('exit', discardPrestartedRemoteServer)
}

/** Stops a remote server started early that no copy took. */
export function discardPrestartedRemoteServer(): void {
  remoteRegistry[PRESTARTED_REMOTE]?.server.kill()
  remoteRegistry[PRESTARTED_REMOTE] = undefined
}

// The server started early, if it was started as `command args`; one started otherwise is stopped.
function takePrestartedRemoteServer(command: string, args: readonly string[]): ServerProcess | undefined {
  const early = remoteRegistry[PRESTARTED_REMOTE]
  if (!early) return undefined
  remoteRegistry[PRESTARTED_REMOTE] = undefined
  if (early.key !== JSON.stringify([command, ...args])) {
    early.server.kill()
    return undefined
  }
  holdsProcess(early.server.child, true)
  return serverOf(early.server)
}

/** How a loopback child is set apart, besides its plugins. */
export interface LoopbackSettings {
  /** CPUs its stream workers keep to. */
  cpus?: readonly number[]
  /** Its session's JSON-lines log. */
  logFile?: string
  /** The session's stream count, for the child to boot its workers before the session asks. */
  streams?: number
  /** Options for its plugins, over those this process has in ESCP_PLUGIN_OPTIONS (ESCP_ERR_BAD_ARGUMENT where those are not a JSON object of plain values). */
  pluginOptions?: Readonly<Record<string, PluginOptionValue>>
}

function loopbackEnv(plugins: readonly string[], { cpus, logFile, streams, pluginOptions }: LoopbackSettings): NodeJS.ProcessEnv {
  return {
    ...process.env,
    [PLUGINS_ENV]: plugins.join(','),
    ...(pluginOptions && Object.keys(pluginOptions).length > 0 ? { [PLUGIN_OPTIONS_ENV]: JSON.stringify({ ...pluginOptionsFromEnv(), ...pluginOptions }) } : {}),
    ...(streams ? { [BOOT_STREAMS_ENV]: String(streams) } : {}),
    // Both ends run on this host: the receiver's workers keep to the same CPUs.
    ...(cpus ? { [CPUMASK_ENV]: cpus.join(',') } : {}),
    ...(logFile ? { [LOGFILE_ENV]: logFile } : {}),
    GLIBC_TUNABLES: process.env.GLIBC_TUNABLES ?? MALLOC_TUNABLES,
    // One libuv pool thread per core beyond the first (at most 4): on 2 cores one thread
    // measured fastest, as concurrent writers of one file contend for its inode lock.
    UV_THREADPOOL_SIZE: process.env.UV_THREADPOOL_SIZE ?? String(Math.max(1, Math.min(4, os.availableParallelism() - 1))),
  }
}

/**
 * The loopback server: this package's server entry point in a child Node process. A child
 * started early with the same plugins (prestartLoopbackServer) is taken instead, when there is
 * one and nothing else sets it apart (CPUs, a log file, plugin options).
 */
export function spawnLoopbackServer(plugins: readonly string[], settings: LoopbackSettings = {}): ServerProcess {
  const early = takePrestarted(plugins.join(','))
  const apart = settings.cpus || settings.logFile || Object.keys(settings.pluginOptions ?? {}).length > 0
  if (early && !apart) return early
  early?.kill()
  return spawnServer(process.execPath, [SERVER_MAIN], loopbackEnv(plugins, settings))
}

/** Where a child started early waits, shared by every copy of this module a process loads. */
const PRESTARTED = Symbol.for('escp.loopback.prestarted')
type Prestarted = { plugins: string; server: SpawnedServer }
const registry = globalThis as unknown as { [PRESTARTED]?: Prestarted }

/**
 * Starts the loopback child now, for a local copy about to be made: Node's start-up and the
 * child's plugins (some 0.1 s of CPU) then overlap the command's own. Until a copy takes it, the
 * child holds nothing open in this process: a command that exits without copying (an error, a
 * usage message) closes the child's stdin by exiting, and the child ends.
 */
export function prestartLoopbackServer(plugins: readonly string[], streams?: number): void {
  discardPrestartedLoopbackServer()
  const server = start(process.execPath, [SERVER_MAIN], loopbackEnv(plugins, { streams }))
  holdsProcess(server.child, false)
  registry[PRESTARTED] = { plugins: plugins.join(','), server }
}

/** Whether `child`, and the pipes to it, keep this process running (as a child does by default). */
function holdsProcess(child: ChildProcess, holds: boolean): void {
  if (holds) child.ref()
  else child.unref()
  for (const pipe of [child.stdin, child.stdout, child.stderr]) {
    const handle = pipe as unknown as { ref?: () => void; unref?: () => void } | null
    if (holds) handle?.ref?.()
    else handle?.unref?.()
  }
}

/** Stops a child started early that no copy will take (the session goes to another host). */
export function discardPrestartedLoopbackServer(): void {
  registry[PRESTARTED]?.server.kill()
  registry[PRESTARTED] = undefined
}

// The prestarted child, if its plugins are these; a child started with others is stopped.
function takePrestarted(plugins: string): ServerProcess | undefined {
  const early = registry[PRESTARTED]
  registry[PRESTARTED] = undefined
  if (!early) return undefined
  if (early.plugins !== plugins || early.server.child.exitCode !== null || early.server.child.signalCode !== null) {
    early.server.kill()
    return undefined
  }
  const { child, ...server } = early.server
  holdsProcess(child, true)
  return server
}
