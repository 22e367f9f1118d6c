// Messages between the main thread, which owns the sockets, and the stream workers, which own
// a stream's keys, engine, compressor and checksum. Every payload is plain data so it can be
// posted; block buffers are transferred, not copied.
import { EscpError, isEscpError } from '../errors'
import type { EscpErrorCode } from '../errors'
import type { FileAttributes } from '../contracts/io-engine'
import type { PluginSetSpec } from '../plugins/loader'
import type { DirectionPosition } from '../protocol/record-crypto'

/** How every stream of a session is served, the same for each of its workers. */
export interface StreamSettings {
  plugins: PluginSetSpec
  side: 'client' | 'server'
  engine: string
  checksum: string
  compressor: string
  compressionLevel: number
  blockSizeBytes: number
  queueDepth: number
  sparse: boolean
  direct: boolean
  /** CPUs each worker pins itself to (and its engine's threads with it); none: no pinning. */
  cpus?: readonly number[]
}

/**
 * What a worker thread is started with: enough to load its plugins while its session is still
 * being set up (a Node worker takes tens of milliseconds of CPU to load them); its stream comes
 * later, in a 'start' message.
 */
export interface WorkerBoot {
  plugins: PluginSetSpec
  /** CPUs the worker pins itself to (and its engine's threads with it); none: no pinning. */
  cpus?: readonly number[]
}

/** What one stream's worker is given to start: the settings, its stream, and its key positions. */
export interface StreamWorkerData extends StreamSettings {
  role: 'sender' | 'receiver'
  index: number
  secret: Uint8Array
  sessionId: Uint8Array
  cipher: string
  send: DirectionPosition
  receive: DirectionPosition
}

export interface SerializedError {
  code: string
  message: string
  errno?: string
  syscall?: string
  path?: string
}

export function serializeError(err: unknown): SerializedError {
  if (isEscpError(err)) {
    const { code, message, errno, syscall, path } = err
    return { code, message, errno, syscall, path }
  }
  return { code: 'ESCP_ERR_TRANSFER', message: err instanceof Error ? err.message : String(err) }
}

export function deserializeError(e: SerializedError): EscpError {
  const message = e.message.startsWith(`${e.code}: `) ? e.message.slice(e.code.length + 2) : e.message
  return new EscpError(e.code as EscpErrorCode, message, { errno: e.errno, syscall: e.syscall, path: e.path })
}

/**
 * Bytes to post to a worker in a buffer of their own: posting a view clones the whole buffer
 * under it, and a short Buffer (a path from Buffer.concat) is a view into an 8 KiB pool slab.
 * Measured with 10,000 paths: half the main thread's CPU for the messages.
 */
export function ownBytes(b: Uint8Array): Uint8Array {
  return b.byteOffset === 0 && b.byteLength === b.buffer.byteLength ? b : new Uint8Array(b)
}

/** A file a receiver worker writes blocks into (its temporary name). */
export interface WriteTarget {
  path: Uint8Array
  /** null: known only at the file's end (its FileDone); writes are bounded by MAX_FILE_SIZE_BYTES until then. */
  sizeBytes: number | null
  /** The engine may reserve `sizeBytes` up front; false keeps holes (sparse files) as holes. */
  preallocate: boolean
  /**
   * Set for a file of one block: the worker that writes it also sets its size (with `sparse`)
   * and these attributes, and closes it, before it answers; the main thread then only renames.
   */
  finish?: Partial<FileAttributes>
  /**
   * With `finish`, for an engine that has `createFile`: the file does not exist yet, and the
   * worker creates it (exclusively, with these permission bits), writes, finishes and closes it
   * in one engine call. A failed write leaves no file behind.
   */
  createMode?: number
  /**
   * With `finish`, for a file that comes in a bundle with its digest (1.4): its final name. The
   * worker checks the file's digest before it writes it (a file whose digest differs is not
   * written), and renames it there once finished.
   */
  placeAt?: Uint8Array
}

/**
 * Messages of one turn of the event loop travel as one 'batch' in each direction: a message
 * wakes the other thread, and with many small files one per block cost more than the blocks.
 */
export class Outbox<M> {
  private messages: M[] = []
  private transfer: ArrayBuffer[] = []

  constructor(private readonly send: (batch: M[], transfer: ArrayBuffer[]) => void) {}

  add(msg: M, transfer: ArrayBuffer[]): void {
    if (this.messages.length === 0) setImmediate(() => this.flush())
    this.messages.push(msg)
    for (const t of transfer) this.transfer.push(t)
  }

  flush(): void {
    if (this.messages.length === 0) return
    const { messages, transfer } = this
    this.messages = []
    this.transfer = []
    this.send(messages, transfer)
  }
}

/**
 * The trailer of a 1.4 bundle: after its files' bytes, per file a status byte (BUNDLE_FILE_*)
 * and its digest of `digestBytes` (zeros for an unreadable file).
 */
export function bundleTrailerBytes(files: number, digestBytes: number): number {
  return files * (1 + digestBytes)
}

/** One file of a bundle a sender's worker reads: whole, `length` bytes as announced. */
export interface BundleRead {
  fileId: bigint
  path: Uint8Array
  length: number
}

/** One file of a bundle a receiver's worker writes: its bytes follow those of the files before it. */
export interface BundlePart {
  fileId: bigint
  length: number
  /** null: its bytes are dropped (the file failed, or the sender dropped it). */
  target: WriteTarget | null
}

/** How one file of a bundle fared in a worker: its digest, or why it failed; `dropped`: not written (its target was null). */
export interface BundleOutcome {
  fileId: bigint
  length: number
  digest: Uint8Array | null
  error?: SerializedError
  dropped?: boolean
  /** 1.4: the file's digest from the bundle (empty without a checksum); absent for a file the sender could not read. */
  done?: Uint8Array
  /** 1.4: verified against `done`, written and renamed to its final name (WriteTarget.placeAt). */
  placed?: boolean
}

export type ToWorker =
  /** The worker's stream: sent once, first. */
  | { t: 'start'; data: StreamWorkerData }
  /**
   * `only`: the file's one block; the worker closes it right after reading (no 'close' follows).
   * `toEnd`: the file's size is known only at its end; a short or empty read is that end.
   */
  | { t: 'read'; seq: number; fileId: bigint; path: Uint8Array; offset: number; length: number; only: boolean; toEnd: boolean }
  /** Small whole files, sealed together as one Bundle record, in the order given. */
  | { t: 'readBundle'; seq: number; files: BundleRead[]; digests: boolean }
  | { t: 'frame'; seq: number; raw: Uint8Array; target: WriteTarget | null }
  /** A Bundle record and where each of its files goes. */
  | { t: 'bundle'; seq: number; raw: Uint8Array; parts: BundlePart[]; digests: boolean }
  | { t: 'close'; fileId: bigint }
  /** A sender's frames of a full block, written to the socket and given back to seal into again. */
  | { t: 'frames'; buffers: ArrayBuffer[] }
  | { t: 'end' }
  | { t: 'batch'; messages: ToWorker[] }

export type FromWorker =
  | { t: 'ready' }
  | { t: 'sealed'; seq: number; fileId: bigint; offset: number; length: number; wireBytes: number; digest: Uint8Array | null; frames: Uint8Array[] }
  | { t: 'readFailed'; seq: number; fileId: bigint; length: number; error: SerializedError }
  /** A bundle sealed: its files that could not be read went as zeros, with their error. */
  | { t: 'bundleSealed'; seq: number; wireBytes: number; frames: Uint8Array[]; parts: BundleOutcome[] }
  /** A read of a file of unknown size found nothing at its offset: the file ended at `sizeBytes`. */
  | { t: 'readEnded'; seq: number; fileId: bigint; sizeBytes: number }
  /** `done` and `placed`: a file of a 1.4 bundle, as in its BundleOutcome. */
  | { t: 'written'; seq: number; fileId: bigint; offset: number; length: number; wireBytes: number; digest: Uint8Array | null; done?: Uint8Array; placed?: boolean }
  | { t: 'discarded'; seq: number; fileId: bigint; done?: Uint8Array }
  | { t: 'writeFailed'; seq: number; fileId: bigint; error: SerializedError; done?: Uint8Array }
  | { t: 'bundleWritten'; seq: number; wireBytes: number; parts: BundleOutcome[] }
  | { t: 'endReceived'; seq: number }
  /** A key change consumed (REKEY): the record is answered like any other. */
  | { t: 'rekeyed'; seq: number }
  /** Buffers of full-size records, done with, for the main thread to gather records into again. */
  | { t: 'records'; buffers: ArrayBuffer[] }
  | { t: 'closed'; fileId: bigint; error?: SerializedError }
  | { t: 'ended'; frames: Uint8Array[] }
  | { t: 'fatal'; error: SerializedError }
  | { t: 'batch'; messages: FromWorker[] }
