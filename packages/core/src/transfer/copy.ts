// The library entry point for a copy in loopback mode: the receiver is a child process (the
// same server a remote host runs, on its stdio) and the data crosses real, encrypted TCP
// streams on the loopback interface.
import { spawn } from 'node:child_process'
import path from 'node:path'
import { escpError, isEscpError, remoteError } from '../errors'
import type { EscpError } from '../errors'
import { loadPlugins, pluginsFromEnv, PLUGINS_ENV } from '../plugins/loader'
import type { PluginSet } from '../plugins/loader'
import { ControlChannel } from '../protocol/control-channel'
import { startClientSession } from '../protocol/session'
import type { SessionRequest } from '../protocol/session'
import type { SourceIssue } from './enumerate'
import { startSenderLinks } from './links'
import { splitEngines, withDefaults } from './options'
import type { TransferOptions } from './options'
import { Sender } from './sender'
import { linkSettings } from './server'
import type { TransferProgress, TransferSummary } from './summary'

const SERVER_MAIN = path.join(__dirname, 'server-main.js')
/**
 * node:crypto allocates a fresh buffer per record; with glibc's default thresholds each one is
 * an mmap/munmap pair and its page faults. Raising them (measured: ~30% less CPU at the
 * receiver) only works from the environment a process starts with, so the child gets it.
 */
const MALLOC_TUNABLES = 'glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=268435456'

export interface CopyRequest {
  sources: string[]
  destination: string
  options?: Partial<TransferOptions>
  onProgress?: (p: TransferProgress) => void
  onIssue?: (issue: SourceIssue) => void
}

export function sessionRequest(o: TransferOptions, serverRole: 'receiver' | 'sender', paths: string[], sourceCount: number, serverEngine: string): SessionRequest {
  return {
    software: 'escp',
    serverRole,
    ciphers: [o.cipher],
    compressor: o.compressor,
    compressionLevel: o.compressionLevel ?? 3,
    checksum: o.checksum,
    serverEngine,
    blockSizeBytes: o.blockSizeBytes,
    streams: o.streams,
    bindAddress: o.bindAddress,
    port: o.port,
    portRange: o.portRange,
    preserve: o.preserve,
    sparse: o.sparse,
    direct: o.direct,
    recursive: o.recursive,
    paths,
    sourceCount,
    queueDepth: o.queueDepth,
  }
}

/** Checks every named plugin before anything starts, so a typo fails at once and clearly. */
export function checkPlugins(set: PluginSet, o: TransferOptions): void {
  set.registry.resolve('cipher', o.cipher)
  if (o.checksum !== 'none') set.registry.resolve('checksum', o.checksum)
  if (o.compressor !== 'none') set.registry.resolve('compressor', o.compressor)
  const engines = splitEngines(o.engine)
  set.registry.resolve('engine', engines.sender)
  set.registry.resolve('engine', engines.receiver)
}

/** Copies `sources` to `destination` through a loopback child receiver. */
export async function copy(request: CopyRequest): Promise<TransferSummary> {
  const o = withDefaults(request.options)
  if (request.sources.length === 0) throw escpError('ESCP_ERR_BAD_ARGUMENT', 'no source was given')
  const plugins = [...pluginsFromEnv(), ...o.plugins]
  const set = await loadPlugins({ plugins })
  checkPlugins(set, o)
  const engines = splitEngines(o.engine)
  const child = spawn(process.execPath, [SERVER_MAIN], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, [PLUGINS_ENV]: set.spec.modules.slice(1).join(','), GLIBC_TUNABLES: process.env.GLIBC_TUNABLES ?? MALLOC_TUNABLES },
  })
  let stderr = ''
  child.stderr.setEncoding('utf8')
  child.stderr.on('data', (s: string) => (stderr = (stderr + s).slice(-4096)))
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  const channel = new ControlChannel(child.stdout, child.stdin, { side: 'client' })
  try {
    const session = await startClientSession(channel, set.registry, sessionRequest(o, 'receiver', [request.destination], request.sources.length, engines.receiver), {
      detachDataStreams: true,
      serverHost: '127.0.0.1',
    })
    const settings = linkSettings(session.init, set, 'client', engines.sender)
    const links = await startSenderLinks(session, settings)
    const checksum = o.checksum === 'none' ? null : set.registry.resolve('checksum', o.checksum)
    let summary: TransferSummary
    try {
      summary = await new Sender(session, links, { sources: request.sources, recursive: o.recursive, blockSizeBytes: o.blockSizeBytes, checksum, onProgress: request.onProgress, onIssue: request.onIssue }).run()
    } catch (err) {
      throw await preferServerReason(channel, err as EscpError)
    }
    const done = await channel.receive(30_000, "the server's SessionDone")
    if (done.kind === 'fatal') throw remoteError(done.fatal.code, done.fatal.message)
    if (done.kind !== 'done') throw escpError('ESCP_ERR_PROTOCOL', `expected SessionDone, got ${done.kind}`)
    return summary
  } catch (err) {
    child.kill('SIGTERM')
    if (isEscpError(err, 'ESCP_ERR_CONTROL_CLOSED') && stderr.trim()) {
      throw escpError('ESCP_ERR_TRANSFER', `the receiver process failed: ${stderr.trim().split('\n').slice(-3).join(' | ')}`)
    }
    throw err
  } finally {
    channel.close()
    child.stdin.end()
    await exited
  }
}

/**
 * When the data plane breaks, the server usually knows why (a full disk, a refused name) and
 * says so on the control channel: wait briefly for that before reporting a bare closed stream.
 */
async function preferServerReason(channel: ControlChannel, err: EscpError): Promise<EscpError> {
  if (!isEscpError(err, 'ESCP_ERR_STREAM_CLOSED')) return err
  try {
    const m = await channel.receive(2000)
    if (m.kind === 'fatal') return remoteError(m.fatal.code, m.fatal.message)
  } catch {
    // No word from the server: the stream error stands.
  }
  return err
}
