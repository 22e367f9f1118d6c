// What a transfer can be asked to do, with escp's defaults.
import os from 'node:os'
import { escpError } from '../errors'
import { checkPluginOptions } from '../plugins/options'
import type { PluginOptionValue } from '../plugins/options'
import { DEFAULT_BLOCK_BYTES, MAX_BLOCK_BYTES, MAX_DATA_STREAMS, MAX_QUEUE_DEPTH, MIN_BLOCK_BYTES } from '../protocol/constants'

export interface TransferOptions {
  /** Data streams (default 4; copy() and push() open fewer for a few small files, as streamsFor counts them). */
  streams: number
  blockSizeBytes: number
  /** Full blocks in flight per data stream (16 times as many small ones); memory is bounded by streams × queueDepth × block. */
  queueDepth: number
  cipher: string
  /** 'none' turns end-to-end verification off. */
  checksum: string
  /** 'none' or a compressor name; blocks that do not shrink go raw. */
  compressor: string
  compressionLevel?: number
  /** Engine of each side: 'name', or 'sender::receiver'; 'auto' (default) is the best available on each side. */
  engine: string
  recursive: boolean
  preserve: boolean
  /** The receiver leaves holes for all-zero blocks. */
  sparse: boolean
  /** O_DIRECT where the engine and file system allow it (a receiver writes files of one block buffered). */
  direct: boolean
  /** First port of the receiver's range and the range's size. */
  port: number
  portRange: number
  /**
   * Address the server listens on (and the client connects to). Empty: the server decides: the
   * address ssh reached it on (SSH_CONNECTION), or loopback for a local copy.
   */
  bindAddress: string
  /** Extra plugin modules (package names or paths), as for ESCP_PLUGINS. */
  plugins: string[]
  /**
   * Options for this side's plugins (`loadPlugins`' `options`), over those in
   * ESCP_PLUGIN_OPTIONS; a loopback child gets the same. A remote host uses its own.
   */
  pluginOptions: Record<string, PluginOptionValue>
  /** Pacing of each data stream at the sender, in bytes per second (EScp's --limit). */
  limitBytesPerSec?: number
  /**
   * CPUs this side's stream workers run on (EScp's cpumask); see parseCpuSet. The other side
   * uses its own setting (ESCP_CPUMASK, or `cpumask` in its config): each host knows its CPUs.
   */
  cpus?: readonly number[]
  /** Loopback copies: the child receiver's JSON-lines log (EScp's X.server). */
  serverLogFile?: string
}

/** Files of at most this fraction of a block go together in bundles, to a peer of 1.3 or later. */
export const BUNDLE_FILE_FRACTION = 4

export const DEFAULT_OPTIONS: TransferOptions = {
  streams: 4,
  blockSizeBytes: DEFAULT_BLOCK_BYTES,
  queueDepth: 4,
  cipher: 'aes-128-gcm',
  checksum: 'xxh64',
  compressor: 'none',
  engine: 'auto',
  recursive: false,
  preserve: false,
  sparse: false,
  direct: true,
  port: 1232,
  portRange: 10,
  bindAddress: '',
  plugins: [],
  pluginOptions: {},
}

export function withDefaults(options: Partial<TransferOptions> = {}): TransferOptions {
  const o = { ...DEFAULT_OPTIONS, ...options }
  if (!Number.isInteger(o.streams) || o.streams < 1 || o.streams > MAX_DATA_STREAMS) {
    throw escpError('ESCP_ERR_BAD_ARGUMENT', `streams must be 1 to ${MAX_DATA_STREAMS}, got ${o.streams}`)
  }
  if (!Number.isInteger(o.blockSizeBytes) || o.blockSizeBytes < MIN_BLOCK_BYTES || o.blockSizeBytes > MAX_BLOCK_BYTES) {
    throw escpError('ESCP_ERR_BAD_ARGUMENT', `block size must be ${MIN_BLOCK_BYTES} to ${MAX_BLOCK_BYTES} bytes, got ${o.blockSizeBytes}`)
  }
  if (!Number.isInteger(o.queueDepth) || o.queueDepth < 1 || o.queueDepth > MAX_QUEUE_DEPTH) {
    throw escpError('ESCP_ERR_BAD_ARGUMENT', `queue depth must be 1 to ${MAX_QUEUE_DEPTH}, got ${o.queueDepth}`)
  }
  splitEngines(o.engine)
  if (o.cpus !== undefined) {
    const count = os.cpus().length
    if (o.cpus.length === 0 || !o.cpus.every((c) => Number.isInteger(c) && c >= 0 && c < count)) {
      throw escpError('ESCP_ERR_BAD_ARGUMENT', `cpus must name CPUs of this host (0-${count - 1}), got [${o.cpus.join(', ')}]`)
    }
  }
  checkPluginOptions(o.pluginOptions, 'pluginOptions')
  if (o.limitBytesPerSec !== undefined && !(o.limitBytesPerSec > 0)) {
    throw escpError('ESCP_ERR_BAD_ARGUMENT', `a rate limit must be positive, got ${o.limitBytesPerSec}`)
  }
  return o
}

/** 'posix' → both sides posix; 'shm::posix' → sender shm, receiver posix. */
export function splitEngines(spec: string): { sender: string; receiver: string } {
  const parts = spec.split('::')
  if (parts.length > 2 || parts.some((p) => p.length === 0)) {
    throw escpError('ESCP_ERR_BAD_ARGUMENT', `engine '${spec}' is not NAME or SENDER::RECEIVER`)
  }
  return { sender: parts[0], receiver: parts[1] ?? parts[0] }
}
