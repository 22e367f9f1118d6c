// The main thread's half of a data stream: it owns the socket (sockets cannot move between
// threads) and moves sealed records between it and the stream's worker. It never looks inside
// a payload: records are cut from the byte stream and transferred whole.
import type net from 'node:net'
import { Worker } from 'node:worker_threads'
import { EventEmitter } from 'node:events'
import { escpError } from '../errors'
import type { EscpError } from '../errors'
import { readRecords } from '../protocol/record-reader'
import type { RecordReader, SealedRecord } from '../protocol/record-reader'
import { RecordType } from '../protocol/constants'
import { RECORD_FRAME_OVERHEAD } from '../protocol/record-crypto'
import type { DetachedStream } from '../protocol/secure-stream'
import type { BundlePart, BundleRead, FromWorker, ToWorker, WriteTarget } from './worker-protocol'
import { Outbox, deserializeError, ownBytes } from './worker-protocol'

/**
 * A stream's window of blocks in flight is counted in sixteenths of a block: a block of b bytes
 * takes ceil(16 b / block size) of the 16 × queue depth units, at least one. Full blocks are held
 * to queue depth as before, and memory to queue depth × block size, while up to 16 × queue depth
 * small files can be under way, whose round trips between threads then overlap (measured with
 * 10,000 files of 1-64 KiB: a fifth to a third less CPU than 4 at a time).
 */
export const UNITS_PER_BLOCK = 16

export function unitsOf(lengthBytes: number, blockSizeBytes: number): number {
  return Math.max(1, Math.ceil((lengthBytes * UNITS_PER_BLOCK) / blockSizeBytes))
}

/** Events: 'message' (FromWorker), 'error' (EscpError, once). */
abstract class StreamLink extends EventEmitter {
  readonly index: number
  protected readonly socket: net.Socket
  protected failure: EscpError | undefined
  protected closing = false
  private corked = false
  protected endSent = false
  private readonly outbox: Outbox<ToWorker>

  constructor(
    stream: DetachedStream,
    readonly worker: Worker,
  ) {
    super()
    this.index = stream.index
    this.socket = stream.socket
    this.socket.on('error', (err: NodeJS.ErrnoException) => {
      if (!this.closing && !this.finished) this.fail(escpError('ESCP_ERR_STREAM_CLOSED', `data stream ${this.index}: ${err.code ?? err.message}`))
    })
    this.socket.on('close', () => {
      if (!this.closing && !this.finished) this.fail(escpError('ESCP_ERR_STREAM_CLOSED', `data stream ${this.index} was closed by the peer`))
    })
    worker.on('error', (err) => this.fail(escpError('ESCP_ERR_TRANSFER', `stream worker ${this.index} crashed: ${err.message}`)))
    worker.on('exit', () => {
      if (!this.closing) this.fail(escpError('ESCP_ERR_TRANSFER', `stream worker ${this.index} exited`))
    })
    this.outbox = new Outbox((messages, transfer) => {
      if (!this.failure) this.worker.postMessage({ t: 'batch', messages }, transfer)
    })
    const dispatch = (m: FromWorker): void => {
      if (m.t === 'batch') for (const x of m.messages) dispatch(x)
      else if (m.t === 'fatal') this.fail(deserializeError(m.error))
      else this.onWorkerMessage(m)
    }
    worker.on('message', dispatch)
  }

  protected abstract onWorkerMessage(m: FromWorker): void

  /** Whether the stream's work is over, so that the peer closing it is no fault. */
  protected abstract get finished(): boolean

  protected post(msg: ToWorker, transfer: ArrayBuffer[] = []): void {
    if (!this.failure) this.outbox.add(msg, transfer)
  }

  /** Has the worker seal END, writes it (writeEnd) and half-closes the socket. */
  sendEnd(): Promise<void> {
    return new Promise((resolve, reject) => {
      const onMessage = (m: FromWorker) => {
        if (m.t !== 'ended') return
        this.worker.off('message', onMessage)
        this.endSent = true
        this.writeEnd(() =>
          this.writeFrames(m.frames, () => {
            this.socket.end()
            resolve()
          }),
        )
      }
      this.worker.on('message', onMessage)
      this.once('error', reject)
      this.post({ t: 'end' })
    })
  }

  /** Writes the END record (`write`), after any record written before it. */
  protected writeEnd(write: () => void): void {
    write()
  }

  /**
   * Writes a record's frames. The socket stays corked until the end of this turn of the event
   * loop, so that the records of all the worker messages handled in it (many small files) leave
   * in one writev, and reach the peer in fewer, larger reads.
   */
  protected writeFrames(frames: Uint8Array[], done: () => void): void {
    if (!this.corked) {
      this.corked = true
      this.socket.cork()
      setImmediate(() => {
        this.corked = false
        this.socket.uncork()
      })
    }
    for (let i = 0; i < frames.length; i++) this.socket.write(frames[i], i === frames.length - 1 ? () => done() : undefined)
  }

  /** Stops the worker and the socket. */
  async close(): Promise<void> {
    this.closing = true
    this.socket.destroy()
    await this.worker.terminate()
  }

  fail(err: EscpError): void {
    if (this.failure || this.closing) return
    this.failure = err
    this.socket.destroy()
    // The transfer that owns the link learns of it through its own listener; none may be left.
    if (this.listenerCount('error') > 0) this.emit('error', err)
  }

  get error(): EscpError | undefined {
    return this.failure
  }
}

/**
 * A sender's stream: blocks go to the worker to be read and sealed, then onto the socket.
 * With a rate limit, each record leaves no earlier than the stream's budget allows (EScp's
 * --limit paces each stream; the kernel's SO_MAX_PACING_RATE is out of Node's reach).
 */
export class SenderLink extends StreamLink {
  private inFlight = 0
  private inFlightUnits = 0
  /** The units of each read handed to the worker, by its seq, until the worker answers. */
  private readonly units = new Map<number, number>()
  private readonly windowUnits: number
  private paceNextMs = 0
  // Records wait here, in the order they were sealed (their nonces' order), for their turn.
  private readonly paced: { bytes: number; write: () => void }[] = []
  private paceTimer: NodeJS.Timeout | null = null
  private readonly fullFrameBytes: number

  constructor(
    stream: DetachedStream,
    worker: Worker,
    queueDepth: number,
    private readonly blockSizeBytes: number,
    private readonly rateLimitBytesPerSec = 0,
  ) {
    super(stream, worker)
    this.windowUnits = queueDepth * UNITS_PER_BLOCK
    this.fullFrameBytes = blockSizeBytes + RECORD_FRAME_OVERHEAD
    // Nothing but END is expected from the receiver on a data stream until the end.
    this.socket.on('data', () => {})
    this.socket.resume()
  }

  protected get finished(): boolean {
    return this.endSent
  }

  /** Room for at least the smallest block. */
  get hasCredit(): boolean {
    return !this.failure && this.inFlightUnits < this.windowUnits
  }

  /** Room for a block of `lengthBytes`. */
  canTake(lengthBytes: number): boolean {
    return !this.failure && this.inFlightUnits + unitsOf(lengthBytes, this.blockSizeBytes) <= this.windowUnits
  }

  get busy(): number {
    return this.inFlight
  }

  read(seq: number, fileId: bigint, path: Uint8Array, offset: number, length: number, only: boolean, toEnd = false): void {
    this.lend(seq, length)
    this.post({ t: 'read', seq, fileId, path: ownBytes(path), offset, length, only, toEnd })
  }

  /**
   * Small whole files, read and sealed together as one Bundle record; with `trailerBytes` (1.4),
   * followed by their statuses and digests, which take credits as the files' bytes do.
   */
  readBundle(seq: number, files: BundleRead[], trailerBytes: number | null): void {
    this.lend(seq, files.reduce((n, f) => n + f.length, trailerBytes ?? 0))
    this.post({ t: 'readBundle', seq, files: files.map((f) => ({ ...f, path: ownBytes(f.path) })), digests: trailerBytes !== null })
  }

  // The credits of a read of `lengthBytes`, under its seq until it lands.
  private lend(seq: number, lengthBytes: number): void {
    const units = unitsOf(lengthBytes, this.blockSizeBytes)
    this.inFlight++
    this.inFlightUnits += units
    this.units.set(seq, units)
  }

  // By the read's seq: the last block of a file of unknown size comes back shorter than asked.
  private landed(seq: number): void {
    this.inFlight--
    this.inFlightUnits -= this.units.get(seq) ?? 0
    this.units.delete(seq)
  }

  closeFile(fileId: bigint): void {
    this.post({ t: 'close', fileId })
  }

  protected onWorkerMessage(m: FromWorker): void {
    if (m.t === 'bundleSealed' && m.frames.length === 0) {
      // A bundle that could not be sealed: no record, and each of its files failed.
      this.landed(m.seq)
      this.emitParts(m)
    } else if (m.t === 'sealed' || m.t === 'bundleSealed') {
      const write = () =>
        this.writeFrames(m.frames, () => {
          this.giveBack(m.frames)
          this.landed(m.seq)
          if (m.t === 'sealed') this.emit('message', m)
          else this.emitParts(m)
        })
      if (this.rateLimitBytesPerSec <= 0) {
        write()
        return
      }
      this.paced.push({ bytes: m.frames.reduce((n, f) => n + f.byteLength, 0), write })
      this.writePaced()
    } else if (m.t === 'readFailed' || m.t === 'readEnded') {
      this.landed(m.seq)
      this.emit('message', m)
    }
  }

  // Each file of a sealed bundle is told to the sender as the one block of its file (sealed),
  // or as a read that failed; the record's bytes on the wire count with its first file read.
  private emitParts(m: Extract<FromWorker, { t: 'bundleSealed' }>): void {
    const first = m.parts.findIndex((p) => !p.error)
    m.parts.forEach((p, i) => {
      const wireBytes = i === first ? m.wireBytes : 0
      if (p.error) this.emit('message', { t: 'readFailed', seq: m.seq, fileId: p.fileId, length: p.length, error: p.error } satisfies FromWorker)
      else this.emit('message', { t: 'sealed', seq: m.seq, fileId: p.fileId, offset: 0, length: p.length, wireBytes, digest: p.digest, frames: [] } satisfies FromWorker)
    })
  }

  // Once written (the socket's callback), a full-block frame's bytes are the kernel's: its
  // buffer goes back to the worker (with the other messages of this turn, in the Outbox's batch).
  private giveBack(frames: Uint8Array[]): void {
    const buffers = frames.flatMap((f) => (f.buffer.byteLength === this.fullFrameBytes && f.buffer instanceof ArrayBuffer ? [f.buffer] : []))
    if (buffers.length > 0 && !this.closing) this.post({ t: 'frames', buffers }, buffers)
  }

  // What waits its turn goes nowhere once the stream is closed or failed: its timer must not
  // keep the process (one record at a slow pace waits long).
  override async close(): Promise<void> {
    this.dropPaced()
    await super.close()
  }

  override fail(err: EscpError): void {
    this.dropPaced()
    super.fail(err)
  }

  private dropPaced(): void {
    if (this.paceTimer) clearTimeout(this.paceTimer)
    this.paceTimer = null
    this.paced.length = 0
  }

  // A paced stream writes END after the records still waiting their turn, which were sealed
  // before it: ahead of them, its nonce would be out of order, and the peer would take the stream
  // for tampered with. The last records of a file that failed may still wait as the session ends.
  protected override writeEnd(write: () => void): void {
    if (this.paced.length === 0 && !this.paceTimer) return write()
    this.paced.push({ bytes: 0, write })
    this.writePaced()
  }

  // One timer for the queue, never one per record: a record whose turn has come must not pass
  // one still waiting for a late timer, or the receiver would see the nonces out of order.
  private writePaced(): void {
    if (this.paceTimer) return
    while (this.paced.length > 0 && !this.failure && !this.closing) {
      const now = performance.now()
      if (this.paceNextMs > now) {
        this.paceTimer = setTimeout(() => {
          this.paceTimer = null
          this.writePaced()
        }, this.paceNextMs - now)
        return
      }
      const next = this.paced.shift() as { bytes: number; write: () => void }
      this.paceNextMs = now + (next.bytes / this.rateLimitBytesPerSec) * 1000
      next.write()
    }
  }
}

/** Where a receiver's records go: the receiver answers for the files announced to it. */
export interface RecordTargets {
  /**
   * Where the blocks of a file go; null drops them; undefined holds them (not announced yet, or
   * still being placed). Throws ESCP_ERR_PROTOCOL for a block no announcement can claim.
   */
  targetOf(fileId: bigint): WriteTarget | null | undefined
  /** The files of a Bundle record, or undefined to hold it until each is ready. Throws ESCP_ERR_PROTOCOL. */
  bundleOf(firstId: bigint, count: number, rawLength: number): BundlePart[] | undefined
  /** Bundles end with their files' digests (protocol 1.4). */
  readonly bundleDigests: boolean
}

/**
 * A receiver's stream: records are cut from the socket and handed, in order, to the worker
 * with the file each belongs to. A block for a file not yet announced on the meta stream (the
 * streams race) holds the stream until the announcement arrives; a block that no announcement
 * can claim (targetOf throws) fails the stream.
 */
export class ReceiverLink extends StreamLink {
  /** Set once the stream's first bytes (read before this link) are cut: they may fill the window. */
  private reader: RecordReader | null = null
  private readingPaused = false
  private readonly waiting: SealedRecord[] = []
  private waitingUnits = 0
  private inFlightUnits = 0
  /** The units of each record handed to the worker, by its seq, until the worker answers. */
  private readonly units = new Map<number, number>()
  private readonly windowUnits: number
  private seq = 0
  /** Files being closed in the worker, by id: settled by its 'closed'. */
  private readonly closes = new Map<bigint, { resolve: () => void; reject: (err: EscpError) => void }>()
  /** An END record has been cut from the stream (its worker has yet to authenticate it). */
  private endFramed = false
  endReceived = false
  /** Buffers of full-size records that the worker is done with, to gather records into again. */
  private readonly spare: ArrayBuffer[] = []
  private readonly fullFrameBytes: number
  private readonly spareLimit: number

  constructor(
    stream: DetachedStream,
    worker: Worker,
    private readonly blockSizeBytes: number,
    queueDepth: number,
    private readonly targets: RecordTargets,
  ) {
    super(stream, worker)
    this.windowUnits = queueDepth * UNITS_PER_BLOCK
    this.fullFrameBytes = blockSizeBytes + RECORD_FRAME_OVERHEAD
    // As many as can be in flight and waiting, and one being gathered.
    this.spareLimit = 2 * queueDepth + 1
    this.socket.on('end', () => this.ended())
    this.reader = readRecords(this.socket, stream.pending, {
      blockSizeBytes,
      allocate: (bytes) => this.allocate(bytes),
      onRecords: (frames) => this.onRecords(frames),
      onError: (err) => this.fail(err),
    })
    if (this.readingPaused) this.reader.pause()
    else this.reader.resume()
    // The peer's FIN may have come while the stream waited to be taken over: its 'end' is gone.
    if (this.socket.readableEnded) this.ended()
  }

  protected get finished(): boolean {
    return this.endFramed
  }

  private ended(): void {
    if (this.endFramed || this.failure) return
    const why = (this.reader?.pendingBytes ?? 0) > 0 ? 'ended in the middle of a record' : 'ended without END'
    this.fail(escpError('ESCP_ERR_STREAM_CLOSED', `data stream ${this.index} ${why}`))
  }

  /** Call when files are announced: frames held for them move on. */
  pump(): void {
    while (this.waiting.length > 0 && !this.failure) {
      const f = this.waiting[0]
      const units = this.unitsOf(f)
      if (this.inFlightUnits + units > this.windowUnits) break
      const { type, fileId, offset, rawLength } = f.header
      let target: WriteTarget | null | undefined = null
      let parts: BundlePart[] | undefined
      try {
        if (type === RecordType.Block) target = this.targets.targetOf(fileId)
        else if (type === RecordType.Bundle) parts = this.targets.bundleOf(fileId, Number(offset), rawLength)
      } catch (err) {
        this.fail(err as EscpError)
        return
      }
      if (target === undefined || (type === RecordType.Bundle && !parts)) break
      this.waiting.shift()
      this.waitingUnits -= units
      this.inFlightUnits += units
      this.units.set(this.seq, units)
      // Kept compact on the file's target, for its later blocks too.
      if (target) target.path = ownBytes(target.path)
      if (parts) {
        for (const p of parts) {
          if (!p.target) continue
          p.target.path = ownBytes(p.target.path)
          if (p.target.placeAt) p.target.placeAt = ownBytes(p.target.placeAt)
        }
        this.post({ t: 'bundle', seq: this.seq++, raw: f.raw, parts, digests: this.targets.bundleDigests }, [f.raw.buffer as ArrayBuffer])
      } else {
        this.post({ t: 'frame', seq: this.seq++, raw: f.raw, target }, [f.raw.buffer as ArrayBuffer])
      }
    }
    if (this.waitingUnits < this.windowUnits && this.readingPaused && !this.failure) {
      this.readingPaused = false
      this.reader?.resume()
    }
  }

  /** Closes the file in the worker once its writes there are done. */
  closeFile(fileId: bigint): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.failure) {
        reject(this.failure)
        return
      }
      this.closes.set(fileId, { resolve, reject })
      this.post({ t: 'close', fileId })
    })
  }

  // A failed or closed link answers nothing more: every close it was asked for fails, so that
  // no file's finishing waits on it.
  override fail(err: EscpError): void {
    super.fail(err)
    this.rejectCloses(err)
  }

  override async close(): Promise<void> {
    this.rejectCloses(escpError('ESCP_ERR_TRANSFER', `data stream ${this.index} was closed`))
    await super.close()
  }

  private rejectCloses(err: EscpError): void {
    const pending = [...this.closes.values()]
    this.closes.clear()
    for (const c of pending) c.reject(this.failure ?? err)
  }

  private onRecords(frames: SealedRecord[]): void {
    if (this.failure) return
    for (const f of frames) {
      if (this.endFramed) {
        this.fail(escpError('ESCP_ERR_PROTOCOL', `data stream ${this.index}: a record after END`))
        return
      }
      if (f.header.type === RecordType.End) this.endFramed = true
      this.waiting.push(f)
      this.waitingUnits += this.unitsOf(f)
    }
    if (this.waitingUnits >= this.windowUnits && !this.readingPaused) {
      this.readingPaused = true
      this.reader?.pause()
    }
    this.pump()
  }

  /** A record's share of the window, by its payload (END and the like: one unit). */
  private unitsOf(f: SealedRecord): number {
    return unitsOf(f.header.length, this.blockSizeBytes)
  }

  // Each file of a written bundle is told to the receiver as the one block of its file: written
  // (the record's bytes on the wire count with its first written), failed, or dropped.
  private emitParts(m: Extract<FromWorker, { t: 'bundleWritten' }>): void {
    const first = m.parts.findIndex((p) => !p.dropped && !p.error)
    m.parts.forEach((p, i) => {
      const { seq } = m
      const { fileId } = p
      const { done, placed } = p
      if (p.dropped) this.emit('message', { t: 'discarded', seq, fileId, done } satisfies FromWorker)
      else if (p.error) this.emit('message', { t: 'writeFailed', seq, fileId, error: p.error, done } satisfies FromWorker)
      else this.emit('message', { t: 'written', seq, fileId, offset: 0, length: p.length, wireBytes: i === first ? m.wireBytes : 0, digest: p.digest, done, placed } satisfies FromWorker)
    })
  }

  // A full-size record is gathered into a buffer the worker gave back, when there is one: the
  // receiver's memory then stays at its window, not at what the workers' collectors have yet to
  // free, and no page of a new buffer is faulted in per record.
  private allocate(bytes: number): Buffer {
    const reused = bytes === this.fullFrameBytes ? this.spare.pop() : undefined
    return reused ? Buffer.from(reused) : Buffer.allocUnsafeSlow(bytes)
  }

  protected onWorkerMessage(m: FromWorker): void {
    if (m.t === 'written' || m.t === 'discarded' || m.t === 'writeFailed' || m.t === 'endReceived' || m.t === 'rekeyed' || m.t === 'bundleWritten') {
      this.inFlightUnits -= this.units.get(m.seq) ?? 0
      this.units.delete(m.seq)
      if (m.t === 'endReceived') this.endReceived = true
      if (m.t === 'bundleWritten') this.emitParts(m)
      else if (m.t !== 'rekeyed') this.emit('message', m)
      this.pump()
    } else if (m.t === 'records') {
      for (const b of m.buffers) if (this.spare.length < this.spareLimit && b.byteLength === this.fullFrameBytes) this.spare.push(b)
    } else if (m.t === 'closed') {
      const c = this.closes.get(m.fileId)
      this.closes.delete(m.fileId)
      if (m.error) c?.reject(deserializeError(m.error))
      else c?.resolve()
    }
  }
}
