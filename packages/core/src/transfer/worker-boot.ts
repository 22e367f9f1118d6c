// Stream worker threads, started before their session: apart from the links, with nothing but
// Node's own modules and escp's errors and worker messages, so that a server process can start
// its workers before it loads the rest of escp (a worker's start-up then overlaps its own).
import path from 'node:path'
import { Worker } from 'node:worker_threads'
import { escpError } from '../errors'
import type { EscpError } from '../errors'
import { BOOT_STREAMS_ENV } from '../env-names'
import { pluginModules, pluginsFromEnv } from '../plugins/modules'
import { pluginOptionsFromEnv } from '../plugins/options'
import { MAX_DATA_STREAMS } from '../protocol/constants'
import { CPUMASK_ENV, parseCpuSet } from './affinity'
import type { FromWorker, StreamSettings, StreamWorkerData, ToWorker, WorkerBoot } from './worker-protocol'
import { deserializeError } from './worker-protocol'

const WORKER_FILE = path.join(__dirname, 'stream-worker.js')

/**
 * A stream worker that loads its plugins from the moment it is made, so that a session can
 * start its workers while it connects; start() then gives it its stream.
 */
export class BootingWorker {
  readonly worker: Worker
  /** Why the thread failed before start() was listening, if it did. */
  private died: EscpError | undefined
  private readonly onError = (err: Error) => (this.died ??= escpError('ESCP_ERR_TRANSFER', `a stream worker failed to start: ${err.message}`))
  private readonly onExit = (code: number) => (this.died ??= escpError('ESCP_ERR_TRANSFER', `a stream worker exited (${code}) while starting`))

  constructor(boot: WorkerBoot) {
    this.worker = new Worker(WORKER_FILE, { workerData: boot })
    this.worker.on('error', this.onError)
    this.worker.on('exit', this.onExit)
  }

  /** Gives the worker its stream; resolves once it is set up for it. */
  async start(workerData: StreamWorkerData): Promise<Worker> {
    const { worker } = this
    try {
      await new Promise<void>((resolve, reject) => {
        const onMessage = (m: FromWorker) => {
          if (m.t === 'ready') done()
          else if (m.t === 'fatal') done(deserializeError(m.error))
        }
        const onError = (err: Error) => done(escpError('ESCP_ERR_TRANSFER', `stream worker ${workerData.index} failed to start: ${err.message}`))
        const onExit = (code: number) => done(escpError('ESCP_ERR_TRANSFER', `stream worker ${workerData.index} exited (${code}) while starting`))
        const done = (err?: EscpError) => {
          worker.off('message', onMessage)
          worker.off('error', onError)
          worker.off('exit', onExit)
          if (err) reject(err)
          else resolve()
        }
        if (this.died) {
          reject(this.died)
          return
        }
        worker.on('message', onMessage)
        worker.once('error', onError)
        worker.once('exit', onExit)
        worker.postMessage({ t: 'start', data: workerData } satisfies ToWorker)
      })
    } catch (err) {
      void worker.terminate()
      throw err
    } finally {
      worker.off('error', this.onError)
      worker.off('exit', this.onExit)
    }
    return worker
  }

  terminate(): Promise<number> {
    return this.worker.terminate()
  }
}

/**
 * Stream workers booted before their session is set up, one per stream it asks for: they load
 * their plugins while the session connects (on 2 cores, while the other side starts up). A
 * session takes one per stream; close() stops those it did not take.
 */
export class BootedWorkers {
  private readonly idle: BootingWorker[]
  /** The boot as JSON: plain data, so the same plugins and CPUs make the same text. */
  private readonly bootKey: string

  constructor(boot: WorkerBoot, count: number) {
    this.bootKey = JSON.stringify(boot)
    this.idle = []
    try {
      for (let i = 0; i < count; i++) this.idle.push(new BootingWorker(boot))
    } catch (err) {
      // A thread that cannot be made (a limit reached) must not leave those made running.
      for (const w of this.idle.splice(0)) void w.terminate()
      throw err
    }
  }

  /** Whether these workers boot as `boot` says (the same plugins, options and CPUs). */
  bootsAs(boot: WorkerBoot): boolean {
    return JSON.stringify(boot) === this.bootKey
  }

  /** Whether the idle workers keep the process running (as threads do by default). */
  hold(holds: boolean): void {
    for (const w of this.idle) {
      if (holds) w.worker.ref()
      else w.worker.unref()
    }
  }

  /** A booted worker for `settings`, or a new one where none is left or they boot otherwise. */
  take(settings: Pick<StreamSettings, 'plugins' | 'cpus'>): BootingWorker {
    const boot = bootOf(settings)
    return (JSON.stringify(boot) === this.bootKey ? this.idle.shift() : undefined) ?? new BootingWorker(boot)
  }

  async close(): Promise<void> {
    await Promise.all(this.idle.splice(0).map((w) => w.terminate()))
  }
}

/** What a stream's worker boots with, for these settings. */
export function bootOf(s: Pick<StreamSettings, 'plugins' | 'cpus'>): WorkerBoot {
  return { plugins: s.plugins, ...(s.cpus ? { cpus: s.cpus } : {}) }
}

/** The boot of workers with the built-in plugin and `plugins`, and the plugin options of `env`. */
function bootWith(plugins: readonly string[], env: NodeJS.ProcessEnv, cpus?: readonly number[]): WorkerBoot {
  return bootOf({ plugins: { modules: pluginModules(plugins), options: pluginOptionsFromEnv(env) }, cpus })
}

/**
 * The stream workers a server process is told to expect (ESCP_BOOT_STREAMS, which the loopback
 * child is given), booted with the plugins of its environment and `plugins`; undefined when it
 * is told none, or when its plugins or their options cannot be resolved: the session then starts
 * its own workers, and loading the plugins reports the error.
 */
export function bootFromEnv(plugins: readonly string[] = [], env: NodeJS.ProcessEnv = process.env): BootedWorkers | undefined {
  if (bootStreams(env) === undefined) return undefined
  let boot: WorkerBoot
  try {
    boot = serverBoot(plugins, env)
  } catch {
    return undefined
  }
  return bootedFor(boot, env)
}

/** ESCP_BOOT_STREAMS, where it is a stream count a session may ask for. */
function bootStreams(env: NodeJS.ProcessEnv): number | undefined {
  const streams = Number(env[BOOT_STREAMS_ENV])
  return Number.isInteger(streams) && streams >= 1 && streams <= MAX_DATA_STREAMS ? streams : undefined
}

/** As many workers booting as `boot` says as ESCP_BOOT_STREAMS asks for; none where it asks for none, or no thread can be made. */
function bootedFor(boot: WorkerBoot, env: NodeJS.ProcessEnv): BootedWorkers | undefined {
  const streams = bootStreams(env)
  if (streams === undefined) return undefined
  try {
    return new BootedWorkers(boot, streams)
  } catch {
    return undefined
  }
}

/** The boot of a server's stream workers: the plugins of its environment and `plugins`, its CPU set. Throws where they cannot be resolved. */
function serverBoot(plugins: readonly string[], env: NodeJS.ProcessEnv): WorkerBoot {
  const mask = env[CPUMASK_ENV]
  return bootWith([...pluginsFromEnv(env), ...plugins], env, mask ? parseCpuSet(mask) : undefined)
}

/**
 * For `escp server` started over ssh and told how many streams come (ESCP_BOOT_STREAMS, which
 * the client puts in its remote command): its stream workers start before it loads oclif and
 * the rest of escp, as the loopback child's do, with the plugins the command ships. The session
 * takes them (serverWorkers) where it boots the same way: its config may still set a CPU set or
 * plugin options, and other plugins may be installed.
 */
export function prestartServerWorkers(plugins: readonly string[], env: NodeJS.ProcessEnv = process.env): void {
  discardPrestartedWorkers()
  keepEarly(bootFromEnv(plugins, env))
}

/**
 * A server's stream workers for its plugins and environment: those started early where they boot
 * so (prestartServerWorkers), else as bootFromEnv says.
 */
export function serverWorkers(plugins: readonly string[], env: NodeJS.ProcessEnv = process.env): BootedWorkers | undefined {
  let boot: WorkerBoot
  try {
    boot = serverBoot(plugins, env)
  } catch {
    discardPrestartedWorkers()
    return undefined
  }
  return takePrestartedWorkers(boot) ?? bootedFor(boot, env)
}

/** Where workers started early wait, shared by every copy of this module a process loads. */
const PRESTARTED_WORKERS = Symbol.for('escp.workers.prestarted')
const registry = globalThis as unknown as { [PRESTARTED_WORKERS]?: BootedWorkers }

/**
 * Starts `count` stream workers now, with `plugins` (module paths, after the built-in one) and
 * the plugin options of the environment, for a local copy about to be made: their start-up (a
 * Node environment, then escp and its plugins) overlaps the command's own instead of following
 * its loading of escp. Until a copy takes them they keep nothing running: a command that exits
 * without copying exits. Where they cannot be started, the copy starts its own.
 */
export function prestartStreamWorkers(plugins: readonly string[], count: number, env: NodeJS.ProcessEnv = process.env): void {
  discardPrestartedWorkers()
  try {
    keepEarly(new BootedWorkers(bootWith(plugins, env), count))
  } catch {
    // The copy boots its workers as it would have.
  }
}

/** Keeps workers started early for a session to take, holding nothing running until then. */
function keepEarly(booted: BootedWorkers | undefined): void {
  if (!booted) return
  booted.hold(false)
  registry[PRESTARTED_WORKERS] = booted
}

/** The workers started early, when they boot as `boot` says; others are stopped. */
export function takePrestartedWorkers(boot: WorkerBoot): BootedWorkers | undefined {
  const early = registry[PRESTARTED_WORKERS]
  registry[PRESTARTED_WORKERS] = undefined
  if (!early) return undefined
  if (!early.bootsAs(boot)) {
    void early.close()
    return undefined
  }
  early.hold(true)
  return early
}

/** Stops workers started early that no copy will take. */
export function discardPrestartedWorkers(): void {
  void registry[PRESTARTED_WORKERS]?.close()
  registry[PRESTARTED_WORKERS] = undefined
}
