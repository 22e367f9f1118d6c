// A stream worker: one per data stream on each side. It rebuilds the plugin set from its
// spec, takes over the stream's key schedule, and does the per-byte work of the stream off the
// main thread: read → digest → compress → seal on a sender; open → decompress → digest →
// write on a receiver.
import 'reflect-metadata'
import { parentPort, workerData } from 'node:worker_threads'
import fs from 'node:fs'
import { escpError, ioError, isEscpError } from '../errors'
import type { Checksum } from '../contracts/checksum'
import type { Compressor } from '../contracts/compressor'
import { MAX_FILE_SIZE_BYTES, displayPath } from '../contracts/io-engine'
import type { BufferPool, FileAttributes, IoEngine, ReadHandle, WriteHandle } from '../contracts/io-engine'
import { loadPluginSet } from '../plugins/loader'
import { pinCurrentThread } from './affinity'
import { descriptorShare } from './descriptors'
import { BUNDLE_FILE_READ, BUNDLE_FILE_UNREADABLE, FLAG_COMPRESSED, RecordType } from '../protocol/constants'
import { wholeFileDigest } from '../contracts/checksum'
import type { SessionKeys } from '../protocol/keys'
import type { RecordHeader } from '../protocol/record-header'
import { RECORD_FRAME_OVERHEAD, RecordOpener, RecordSealer } from '../protocol/record-crypto'
import { frameOf } from '../protocol/record-decoder'
import type { BundleOutcome, FromWorker, SerializedError, StreamWorkerData, ToWorker, WorkerBoot, WriteTarget } from './worker-protocol'
import { Outbox, bundleTrailerBytes, serializeError } from './worker-protocol'

const boot = workerData as WorkerBoot
const port = parentPort as NonNullable<typeof parentPort>
/** The worker's stream, from its 'start' message. */
let data: StreamWorkerData

const outbox = new Outbox<FromWorker>((messages, transfer) => port.postMessage({ t: 'batch', messages }, transfer))

function post(msg: FromWorker, transfer: ArrayBuffer[] = []): void {
  // What the main thread waits for on its own goes at once, after what came before it.
  if (msg.t === 'ready' || msg.t === 'fatal' || msg.t === 'ended') {
    outbox.flush()
    port.postMessage(msg, transfer)
  } else {
    outbox.add(msg, transfer)
  }
}

/** The buffers of `parts`, made transferable (copied only when they share memory). */
function own(parts: Uint8Array[]): { frames: Uint8Array[]; transfer: ArrayBuffer[] } {
  const transfer: ArrayBuffer[] = []
  const frames = parts.map((p) => {
    if (p.byteOffset === 0 && p.byteLength === p.buffer.byteLength && p.buffer instanceof ArrayBuffer && !transfer.includes(p.buffer)) {
      transfer.push(p.buffer)
      return p
    }
    const copy = new Uint8Array(p.byteLength)
    copy.set(p)
    transfer.push(copy.buffer)
    return copy
  })
  return { frames, transfer }
}

// The plugins load as soon as the thread runs; the stream's set-up waits for them and for its
// 'start'. A failure to load is told once the stream is asked of the worker.
const loaded = (async () => {
  // Before the engine loads, so that the threads it starts inherit the CPU set.
  if (boot.cpus) await pinCurrentThread(boot.cpus)
  return loadPluginSet(boot.plugins)
})()
loaded.catch(() => {})

/** Sets the worker up for its stream; resolves to what handles the stream's messages. */
async function start(given: StreamWorkerData): Promise<(msg: ToWorker) => void> {
  data = given
  const { registry } = await loaded
  const keys: SessionKeys = { secret: data.secret, sessionId: data.sessionId, cipher: registry.resolve('cipher', data.cipher) }
  const engine = registry.resolve('engine', data.engine)
  const checksum = data.checksum === 'none' ? null : registry.resolve('checksum', data.checksum)
  const compressor = data.compressor === 'none' ? null : registry.resolve('compressor', data.compressor)
  const send = data.side === 'client' ? 'c2s' : 's2c'
  const recv = data.side === 'client' ? 's2c' : 'c2s'
  const sealer = new RecordSealer(keys, data.index, send, data.send)
  const opener = new RecordOpener(keys, data.index, recv, data.receive)
  // Two buffers per full block in flight: the data, and the compressed form of it. More small
  // blocks than that may be in flight; they take turns with the buffers.
  const buffers = data.queueDepth * 2 + 2
  const pool = new PoolTurns(engine.createBufferPool(data.blockSizeBytes, buffers), buffers)
  const role = data.role === 'sender' ? new SenderRole(engine, pool, sealer, checksum, compressor) : new ReceiverRole(engine, pool, opener, checksum, compressor)
  const handle = (msg: ToWorker): void => {
    if (msg.t === 'batch') {
      for (const m of msg.messages) handle(m)
      return
    }
    if (msg.t === 'end') {
      const frames = sealer.seal({ type: RecordType.End, flags: 0, rawLength: 0, fileId: 0n, offset: 0n }, new Uint8Array(0)).flat()
      const o = own(frames)
      post({ t: 'ended', frames: o.frames }, o.transfer)
      return
    }
    role.handle(msg)
  }
  return handle
}

/**
 * Files a worker has open at once for the bundles it reads or writes through an engine without
 * whole-file calls (each from its open to its close): a stream's window of bundles of tiny files
 * could otherwise open thousands at once, and run out of descriptors.
 */
const OPEN_FILES_AT_ONCE = descriptorShare(16, 64)

/** At most `count` calls under way at once; the others wait, in turn. */
class Slots {
  private readonly waiting: Array<() => void> = []

  constructor(private free: number) {}

  async run<T>(call: () => Promise<T>): Promise<T> {
    if (this.free > 0) this.free--
    else await new Promise<void>((resolve) => this.waiting.push(resolve))
    try {
      return await call()
    } finally {
      const next = this.waiting.shift()
      if (next) next()
      else this.free++
    }
  }
}

const openFiles = new Slots(OPEN_FILES_AT_ONCE)

/**
 * A buffer pool whose buffers are waited for, in turn, once all are lent. A block that needs two
 * takes both at once, so that blocks holding one each cannot wait on one another.
 */
class PoolTurns {
  private free: number
  private readonly waiting: Array<{ count: number; resolve: () => void }> = []

  constructor(
    private readonly pool: BufferPool,
    count: number,
  ) {
    this.free = count
  }

  async acquire(count: number): Promise<Uint8Array[]> {
    if (this.free >= count && this.waiting.length === 0) this.free -= count
    else await new Promise<void>((resolve) => this.waiting.push({ count, resolve }))
    return Array.from({ length: count }, () => this.pool.acquire())
  }

  /** One buffer now if one is free and nothing waits for one; else null. */
  tryAcquire(): Uint8Array | null {
    if (this.free === 0 || this.waiting.length > 0) return null
    this.free--
    return this.pool.acquire()
  }

  release(buffers: Uint8Array[]): void {
    for (const buf of buffers) this.pool.release(buf)
    this.free += buffers.length
    while (this.waiting.length > 0 && this.free >= this.waiting[0].count) {
      const next = this.waiting.shift() as { count: number; resolve: () => void }
      this.free -= next.count
      next.resolve()
    }
  }
}

class SenderRole {
  private readonly handles = new Map<bigint, Promise<ReadHandle>>()
  /** Frames of a full block that the main thread has written and given back, to seal into again. */
  private readonly spareFrames: ArrayBuffer[] = []
  /**
   * Per file (bundles: one chain of their own), the latest read's end: its successor's turn. A
   * file absent has nothing under way.
   */
  private readonly turns = new Map<bigint | 'bundles', Promise<void>>()

  constructor(
    private readonly engine: IoEngine,
    private readonly pool: PoolTurns,
    private readonly sealer: RecordSealer,
    private readonly checksum: Checksum | null,
    private readonly compressor: Compressor | null,
  ) {}

  // Reads run concurrently, but a file's records are sealed and sent in the order they were
  // asked for: a stream carries a file's blocks in offset order. A receiver whose writes wait on
  // the blocks before them (a consumer region that takes blocks in order) could otherwise hold a
  // stream's whole window with later blocks while the one they wait for queues behind them.
  // Different files' blocks do not wait for each other: a block of one still to come (a stream
  // of a shared-memory region whose producer waits for a free slot) must not hold back another
  // file's blocks, read and holding this worker's buffers, while that file's producer fills the
  // slots the first one's producer waits for.
  handle(msg: ToWorker): void {
    if (msg.t === 'read' || msg.t === 'readBundle') {
      const key = msg.t === 'read' ? msg.fileId : 'bundles'
      const mine = this.turns.get(key) ?? Promise.resolve()
      let done = (): void => {}
      const next = new Promise<void>((resolve) => (done = resolve))
      this.turns.set(key, next)
      void (msg.t === 'read' ? this.read(msg, mine) : this.readBundle(msg, mine)).finally(() => {
        done()
        if (this.turns.get(key) === next) this.turns.delete(key)
      })
    } else if (msg.t === 'close') void this.close(msg.fileId)
    else if (msg.t === 'frames') this.spareFrames.push(...msg.buffers.slice(0, data.queueDepth + 2 - this.spareFrames.length))
  }

  private async read(msg: Extract<ToWorker, { t: 'read' }>, turn: Promise<void>): Promise<void> {
    // The data, and with a compressor the compressed form of it.
    const buffers = await this.pool.acquire(this.compressor ? 2 : 1)
    const [buf, packed] = buffers
    try {
      const path = Buffer.from(msg.path.buffer, msg.path.byteOffset, msg.path.byteLength)
      const asked = buf.subarray(0, msg.length)
      let n: number | { endBytes: number }
      if (msg.only && msg.offset === 0 && !msg.toEnd && this.engine.readFile) {
        // A file of one block: read whole in one engine call rather than open, read and close.
        // The one block of a sparse file that holds data may lie anywhere: readFile reads from 0.
        n = await this.engine.readFile(path, asked)
      } else {
        let h = this.handles.get(msg.fileId)
        if (!h) {
          h = this.engine.openRead(path, { direct: data.direct })
          this.handles.set(msg.fileId, h)
        }
        const handle = await h
        n = msg.toEnd ? await readToEnd(handle, asked, msg.offset) : await handle.read(asked, msg.offset)
      }
      // The reads of a stream run at once; what follows them goes in turn.
      await turn
      if (typeof n !== 'number') {
        post({ t: 'readEnded', seq: msg.seq, fileId: msg.fileId, sizeBytes: n.endBytes })
        return
      }
      if (n !== msg.length) {
        if (!msg.toEnd) throw escpError('ESCP_ERR_SOURCE_CHANGED', path.toString(), `read ${n} bytes at offset ${msg.offset} where ${msg.length} were expected (the file shrank)`)
        // The last block of a file of unknown size goes as long as it is; its length tells the
        // main thread the file's size.
        msg = { ...msg, length: n }
      }
      const view = buf.subarray(0, msg.length)
      const digest = this.checksum ? this.checksum.block(view) : null
      const { flags, payload } = this.compress(view, packed)
      let o: { frames: Uint8Array[]; transfer: ArrayBuffer[] }
      try {
        o = this.seal({ type: RecordType.Block, flags, rawLength: msg.length, fileId: msg.fileId, offset: BigInt(msg.offset) }, payload)
      } catch (err) {
        // The stream's record count may have moved (a key change sealed): it cannot go on.
        post({ t: 'fatal', error: serializeError(err) })
        return
      }
      post({ t: 'sealed', seq: msg.seq, fileId: msg.fileId, offset: msg.offset, length: msg.length, wireBytes: payload.byteLength, digest, frames: o.frames }, o.transfer)
    } catch (err) {
      await turn
      post({ t: 'readFailed', seq: msg.seq, fileId: msg.fileId, length: msg.length, error: serializeError(err) })
    } finally {
      this.pool.release(buffers)
      if (msg.only) void this.close(msg.fileId)
    }
  }

  /**
   * Small whole files read one after another into one buffer and sealed as one Bundle record.
   * A file that cannot be read, or whose size changed, goes as zeros and is answered with its
   * error: the sender drops it, the receiver with it, and the others still arrive. With
   * `digests` (1.4) the files' statuses and digests follow their bytes, in the same record.
   */
  private async readBundle(msg: Extract<ToWorker, { t: 'readBundle' }>, turn: Promise<void>): Promise<void> {
    const buffers = await this.pool.acquire(this.compressor ? 2 : 1)
    const [buf, packed] = buffers
    try {
      const views: Uint8Array[] = []
      let total = 0
      for (const f of msg.files) {
        views.push(buf.subarray(total, total + f.length))
        total += f.length
      }
      const errors = await Promise.all(
        msg.files.map((f, i) =>
          this.readWhole(Buffer.from(f.path.buffer, f.path.byteOffset, f.path.byteLength), views[i]).then(
            () => undefined,
            (err: unknown) => {
              views[i].fill(0)
              return serializeError(err)
            },
          ),
        ),
      )
      await turn
      if (msg.digests) total += this.writeTrailer(views, errors, buf.subarray(total))
      const parts: BundleOutcome[] = msg.files.map((f, i) => {
        const error = errors[i]
        if (error) return { fileId: f.fileId, length: f.length, digest: null, error }
        // A file whose digest went in the bundle needs none from here.
        return { fileId: f.fileId, length: f.length, digest: this.checksum && !msg.digests ? this.checksum.block(views[i]) : null }
      })
      const { flags, payload } = this.compress(buf.subarray(0, total), packed)
      let o: { frames: Uint8Array[]; transfer: ArrayBuffer[] }
      try {
        o = this.seal({ type: RecordType.Bundle, flags, rawLength: total, fileId: msg.files[0].fileId, offset: BigInt(msg.files.length) }, payload)
      } catch (err) {
        post({ t: 'fatal', error: serializeError(err) })
        return
      }
      post({ t: 'bundleSealed', seq: msg.seq, wireBytes: payload.byteLength, frames: o.frames, parts }, o.transfer)
    } catch (err) {
      // The compressor or the checksum failed: no record goes, and each file is answered failed.
      await turn
      const error = serializeError(err)
      post({ t: 'bundleSealed', seq: msg.seq, wireBytes: 0, frames: [], parts: msg.files.map((f) => ({ fileId: f.fileId, length: f.length, digest: null, error })) })
    } finally {
      this.pool.release(buffers)
    }
  }

  /**
   * A 1.4 bundle's trailer, written into `into` right after its files' bytes: per file its status
   * and its file digest, or zeros for one that could not be read. Returns its length.
   */
  private writeTrailer(views: Uint8Array[], errors: (SerializedError | undefined)[], into: Uint8Array): number {
    const digestBytes = this.checksum?.digestLengthBytes ?? 0
    const bytes = bundleTrailerBytes(views.length, digestBytes)
    into.fill(0, 0, bytes)
    for (let i = 0, at = 0; i < views.length; i++, at += 1 + digestBytes) {
      if (errors[i]) {
        into[at] = BUNDLE_FILE_UNREADABLE
      } else {
        into[at] = BUNDLE_FILE_READ
        if (this.checksum) into.set(wholeFileDigest(this.checksum, views[i]), at + 1)
      }
    }
    return bytes
  }

  // A whole small file of exactly `view.byteLength` bytes, in one engine call where it has one.
  private async readWhole(path: Buffer, view: Uint8Array): Promise<void> {
    let n: number
    if (this.engine.readFile) {
      n = await this.engine.readFile(path, view)
    } else {
      n = await openFiles.run(async () => {
        const h = await this.engine.openRead(path, { direct: false })
        try {
          return await h.read(view, 0)
        } finally {
          await h.close().catch(() => {})
        }
      })
    }
    if (n !== view.byteLength) throw escpError('ESCP_ERR_SOURCE_CHANGED', path.toString(), `read ${n} bytes where ${view.byteLength} were expected (the file shrank)`)
  }

  // The compressed form of `view` in `packed` where a compressor makes it smaller; else `view` raw.
  private compress(view: Uint8Array, packed: Uint8Array | undefined): { flags: number; payload: Uint8Array } {
    if (this.compressor && packed && view.byteLength > 0) {
      const c = this.compressor.compress(view, packed.subarray(0, view.byteLength - 1), data.compressionLevel)
      if (c !== null) return { flags: FLAG_COMPRESSED, payload: packed.subarray(0, c) }
    }
    return { flags: 0, payload: view }
  }

  // With a cipher that seals into a buffer, the record is sealed straight from the block into
  // the frame that goes to the socket: no buffer is allocated for a full block, as its frame
  // comes back from the main thread once written. A small record gets a frame of its own size.
  private seal(header: Omit<RecordHeader, 'length'>, payload: Uint8Array): { frames: Uint8Array[]; transfer: ArrayBuffer[] } {
    if (!this.sealer.sealsInto) return own(this.sealer.seal(header, payload).flat())
    const fullBytes = data.blockSizeBytes + RECORD_FRAME_OVERHEAD
    const need = payload.byteLength + RECORD_FRAME_OVERHEAD
    const frame = need * 4 <= fullBytes ? new ArrayBuffer(need) : (this.spareFrames.pop() ?? new ArrayBuffer(fullBytes))
    const parts = this.sealer.sealInto(header, payload, new Uint8Array(frame))
    const record = parts.pop() as Uint8Array
    const rekey = own(parts)
    return { frames: [...rekey.frames, record], transfer: [...rekey.transfer, frame] }
  }

  private async close(fileId: bigint): Promise<void> {
    const h = this.handles.get(fileId)
    this.handles.delete(fileId)
    if (h) await h.then((x) => x.close()).catch(() => {})
  }
}

/**
 * Reads the block at `offset` of a file whose size is known only at its end: its bytes read (a
 * short count for its last block), or its end when nothing is there.
 */
async function readToEnd(handle: ReadHandle, view: Uint8Array, offset: number): Promise<number | { endBytes: number }> {
  const shown = displayPath(handle.path)
  if (!handle.readOrEnd) throw escpError('ESCP_ERR_SOURCE', shown, `its size is known only at its end, and the engine '${data.engine}' cannot read such a file`)
  const r = await handle.readOrEnd(view, offset)
  if (r.bytesRead === view.byteLength) return r.bytesRead
  // A short read is the last block, where the file ends; an empty one finds the end at or before this block.
  const fits = r.bytesRead > 0 ? r.endBytes === offset + r.bytesRead : r.endBytes !== null && r.endBytes <= offset
  if (!fits) throw escpError('ESCP_ERR_SOURCE_CHANGED', shown, `read ${r.bytesRead} bytes at offset ${offset}, where the engine says it ends at ${r.endBytes}`)
  return r.bytesRead > 0 ? r.bytesRead : { endBytes: r.endBytes as number }
}

class ReceiverRole {
  private readonly handles = new Map<bigint, Promise<WriteHandle>>()
  private readonly writes = new Map<bigint, Set<Promise<unknown>>>()
  private failed = false

  constructor(
    private readonly engine: IoEngine,
    private readonly pool: PoolTurns,
    private readonly opener: RecordOpener,
    private readonly checksum: Checksum | null,
    private readonly compressor: Compressor | null,
  ) {}

  handle(msg: ToWorker): void {
    if (msg.t === 'frame') this.frame(msg)
    else if (msg.t === 'bundle') this.bundle(msg)
    else if (msg.t === 'close') void this.close(msg.fileId)
  }

  /**
   * Opens a record where it lies (its buffer came whole from the main thread); null once the
   * record is dealt with: a key change or END answered, or the stream failed. Opening is
   * synchronous and in arrival order, as the nonce counter demands; writes then run concurrently.
   */
  private open(raw: Uint8Array, seq: number, expected: RecordType): { header: RecordHeader; plain: Uint8Array; pooled?: Uint8Array } | null {
    if (this.failed) return null
    let plain: Uint8Array | null
    let f
    let pooled: Uint8Array | null = null
    try {
      f = frameOf(Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength), data.blockSizeBytes)
      pooled = this.alignedFor(f.header)
      plain = pooled ? this.opener.openTo(f.header, f.headerBytes, f.ciphertext, f.tag, pooled.subarray(0, f.ciphertext.byteLength)) : this.opener.openInPlace(f.header, f.headerBytes, f.ciphertext, f.tag)
    } catch (err) {
      if (pooled) this.pool.release([pooled])
      this.failed = true
      const e = (err as { code?: string }).code === 'ESCP_ERR_AUTH' ? escpError('ESCP_ERR_AUTH', `a record on data stream ${data.index}`) : err
      post({ t: 'fatal', error: serializeError(e) })
      return null
    }
    const h = f.header
    if (plain !== null && h.type === expected) return { header: h, plain, pooled: pooled ?? undefined }
    if (pooled) this.pool.release([pooled])
    if (plain === null || h.type === RecordType.End) {
      this.giveBack(raw)
      post(plain === null ? { t: 'rekeyed', seq } : { t: 'endReceived', seq })
    } else {
      this.failed = true
      post({ t: 'fatal', error: serializeError(escpError('ESCP_ERR_PROTOCOL', `a ${RecordType[h.type]} record on data stream ${data.index}`)) })
    }
    return null
  }

  /**
   * A pool buffer (aligned, for O_DIRECT) to decrypt a full block into, where the engine writes
   * with O_DIRECT from aligned memory (directAlignment) and one is free now: its write then needs
   * no copy into an aligned bounce buffer, which a block decrypted where it lies in its record (32
   * bytes in) would. Null otherwise; the block is then decrypted in place.
   */
  private alignedFor(h: RecordHeader): Uint8Array | null {
    if (!data.direct || !this.engine.directAlignment || h.type !== RecordType.Block || h.flags !== 0 || h.length !== data.blockSizeBytes || !this.opener.opensInto) return null
    return this.pool.tryAcquire()
  }

  private frame(msg: Extract<ToWorker, { t: 'frame' }>): void {
    const opened = this.open(msg.raw, msg.seq, RecordType.Block)
    if (!opened) return
    const { header: h, plain, pooled } = opened
    const fileId = h.fileId
    const offset = Number(h.offset)
    // Decrypted into a pool buffer: the record's own is free at once.
    if (pooled) this.giveBack(msg.raw)
    const done = () => (pooled ? this.pool.release([pooled]) : this.giveBack(msg.raw))
    if (!msg.target) {
      done()
      post({ t: 'discarded', seq: msg.seq, fileId })
      return
    }
    const target = msg.target
    const p = this.write(fileId, target, offset, h.rawLength, (h.flags & FLAG_COMPRESSED) !== 0, plain)
      .then(
        (digest) => post({ t: 'written', seq: msg.seq, fileId, offset, length: h.rawLength, wireBytes: h.length, digest }),
        (err) => post({ t: 'writeFailed', seq: msg.seq, fileId, error: serializeError(err) }),
      )
      .finally(done)
    this.track(fileId, target, p)
  }

  /**
   * A Bundle: its plaintext (decompressed once, whole) is cut into its files, in the lengths the
   * main thread gives from their announcements, and each is written as the one block of its file.
   * A 1.4 bundle ends with its files' statuses and digests: a file is checked before it is
   * written (one whose digest differs is not), one the sender could not read is not written, and
   * one with a final name to go to is renamed there.
   */
  private bundle(msg: Extract<ToWorker, { t: 'bundle' }>): void {
    const opened = this.open(msg.raw, msg.seq, RecordType.Bundle)
    if (!opened) return
    const { header: h, plain } = opened
    void (async () => {
      let buf: Uint8Array | undefined
      try {
        let bytes = plain
        if ((h.flags & FLAG_COMPRESSED) !== 0) {
          if (!this.compressor) throw escpError('ESCP_ERR_PROTOCOL', 'a compressed bundle in a session without compression')
          ;[buf] = await this.pool.acquire(1)
          const n = this.compressor.decompress(plain, buf)
          if (n !== h.rawLength) throw escpError('ESCP_ERR_CORRUPT_BLOCK', `a bundle decompressed to ${n} bytes, its header says ${h.rawLength}`)
          bytes = buf.subarray(0, n)
        }
        const total = msg.parts.reduce((n, part) => n + part.length, 0)
        const digestBytes = this.checksum?.digestLengthBytes ?? 0
        const trailer = msg.digests ? bundleTrailerBytes(msg.parts.length, digestBytes) : 0
        if (total + trailer !== bytes.byteLength) throw escpError('ESCP_ERR_PROTOCOL', `a bundle of ${bytes.byteLength} bytes whose files make ${total}${trailer ? ` and their digests ${trailer}` : ''}`)
        // Every status is checked before any file is written: a bad one fails the session.
        for (let i = 0; msg.digests && i < msg.parts.length; i++) {
          const read = bytes[total + i * (1 + digestBytes)]
          if (read !== BUNDLE_FILE_READ && read !== BUNDLE_FILE_UNREADABLE) throw escpError('ESCP_ERR_PROTOCOL', `a bundle whose file ${msg.parts[i].fileId} has status ${read}`)
        }
        let at = 0
        let status = total
        const outcomes = msg.parts.map((part): Promise<BundleOutcome> => {
          const view = bytes.subarray(at, (at += part.length))
          const { fileId, length, target } = part
          if (msg.digests) {
            const read = bytes[status]
            // A copy: the record's buffer goes back to the main thread to read the next one into.
            const done = new Uint8Array(bytes.subarray(status + 1, (status += 1 + digestBytes)))
            if (read === BUNDLE_FILE_UNREADABLE) return Promise.resolve({ fileId, length, digest: null, dropped: true })
            if (!target) return Promise.resolve({ fileId, length, digest: null, dropped: true, done })
            return this.placeChecked(fileId, target, view, done)
          }
          if (!target) return Promise.resolve({ fileId, length, digest: null, dropped: true })
          return this.writeBundled(fileId, target, view)
        })
        post({ t: 'bundleWritten', seq: msg.seq, wireBytes: h.length, parts: await Promise.all(outcomes) })
      } catch (err) {
        this.failed = true
        post({ t: 'fatal', error: serializeError(err) })
      } finally {
        if (buf) this.pool.release([buf])
        this.giveBack(msg.raw)
      }
    })()
  }

  /**
   * A file of a 1.4 bundle with its digest `done`: not written unless its bytes match it. A file
   * with a final name to go to is put there in one engine call where the engine can (placeFile),
   * else written whole and finished under its temporary name (created here in one call where the
   * engine can), then renamed there; any other is written as the one block of its file, for the
   * main thread to finish.
   */
  private async placeChecked(fileId: bigint, target: WriteTarget, view: Uint8Array, done: Uint8Array): Promise<BundleOutcome> {
    const length = view.byteLength
    const { placeAt, finish } = target
    const oneCall = this.madeInOneCall(target)
    try {
      if (this.checksum && !Buffer.from(wholeFileDigest(this.checksum, view)).equals(done)) {
        throw escpError('ESCP_ERR_VERIFY', displayPath(placeAt ?? target.path), `its ${this.checksum.name} digest differs from the one its bundle carries`)
      }
      if (!placeAt || !finish) return await this.writeBundled(fileId, target, view, done)
      const temp = Buffer.from(target.path.buffer, target.path.byteOffset, target.path.byteLength)
      const final = Buffer.from(placeAt.buffer, placeAt.byteOffset, placeAt.byteLength)
      if (oneCall && this.engine.placeFile) {
        // Made and put in place in one engine call: it shows at its name whole or not at all.
        await this.engine.placeFile(final, temp, view, { mode: target.createMode as number, sizeBytes: target.sizeBytes ?? length, sparse: data.sparse, attributes: finish })
        return { fileId, length, digest: null, done, placed: true }
      }
      const write = () => this.writeWhole(target, finish, view, 0)
      await (oneCall ? write() : openFiles.run(write))
      try {
        if (this.engine.rename) await this.engine.rename(temp, final)
        else await fs.promises.rename(temp, final)
      } catch (err) {
        await fs.promises.unlink(temp).catch(() => {})
        throw isEscpError(err) ? err : ioError(err, 'rename', final)
      }
      return { fileId, length, digest: null, done, placed: true }
    } catch (err) {
      return { fileId, length, digest: null, error: serializeError(err), done }
    }
  }

  /**
   * A bundled file written as the one block of its file: its outcome (a failed write is one, not a
   * rejection), tracked until the file's close. `done`, a 1.4 bundle's digest, goes with it.
   */
  private writeBundled(fileId: bigint, target: WriteTarget, view: Uint8Array, done?: Uint8Array): Promise<BundleOutcome> {
    const length = view.byteLength
    const write = () => this.write(fileId, target, 0, length, false, view)
    const p = (this.madeInOneCall(target) ? write() : openFiles.run(write)).then(
      (digest): BundleOutcome => ({ fileId, length, digest, ...(done ? { done } : {}) }),
      (err: unknown): BundleOutcome => ({ fileId, length, digest: null, error: serializeError(err), ...(done ? { done } : {}) }),
    )
    this.track(fileId, target, p)
    return p
  }

  // A file made in one engine call holds no descriptor between calls; others take one of the
  // open-file slots from their open to their close.
  private madeInOneCall(target: WriteTarget): boolean {
    return target.createMode !== undefined && this.engine.createFile !== undefined
  }

  // A file finished here gets no 'close': its closing has nothing to wait for. Others wait, at
  // their close, for their writes under way.
  private track(fileId: bigint, target: WriteTarget, p: Promise<unknown>): void {
    if (target.finish) return
    let set = this.writes.get(fileId)
    if (!set) this.writes.set(fileId, (set = new Set()))
    set.add(p)
    void p.finally(() => set.delete(p))
  }

  // A full-size buffer (a full-size record's, or a large one's read into it), once nothing reads
  // it, goes back to the main thread to gather another record into (with the other messages of
  // this turn, in the Outbox's batch).
  private giveBack(raw: Uint8Array): void {
    const whole = raw.buffer
    if (!(whole instanceof ArrayBuffer) || raw.byteOffset !== 0 || whole.byteLength !== data.blockSizeBytes + RECORD_FRAME_OVERHEAD) return
    post({ t: 'records', buffers: [whole] }, [whole])
  }

  private async write(fileId: bigint, target: WriteTarget, offset: number, rawLength: number, compressed: boolean, plain: Uint8Array): Promise<Uint8Array | null> {
    // A file whose size comes with its FileDone is bounded by what an engine can address until then.
    if (offset + rawLength > (target.sizeBytes ?? MAX_FILE_SIZE_BYTES)) {
      throw escpError('ESCP_ERR_PROTOCOL', target.sizeBytes === null ? `a block at ${offset}+${rawLength}, beyond the ${MAX_FILE_SIZE_BYTES} bytes escp can write` : `a block at ${offset}+${rawLength} beyond the file's ${target.sizeBytes} bytes`)
    }
    let buf: Uint8Array | undefined
    try {
      let data_ = plain
      if (compressed) {
        if (!this.compressor) throw escpError('ESCP_ERR_PROTOCOL', 'a compressed block in a session without compression')
        ;[buf] = await this.pool.acquire(1)
        const n = this.compressor.decompress(plain, buf)
        if (n !== rawLength) throw escpError('ESCP_ERR_CORRUPT_BLOCK', `decompressed to ${n} bytes, the header says ${rawLength}`)
        data_ = buf.subarray(0, n)
      }
      const digest = this.checksum ? this.checksum.block(data_) : null
      if (target.finish) {
        await this.writeWhole(target, target.finish, data_, offset)
        return digest
      }
      let h = this.handles.get(fileId)
      if (!h) {
        h = this.engine.openWrite(Buffer.from(target.path.buffer, target.path.byteOffset, target.path.byteLength), { create: false, sparse: data.sparse, direct: data.direct, sizeBytes: target.sizeBytes ?? undefined, preallocate: target.preallocate })
        this.handles.set(fileId, h)
      }
      await (await h).write(data_, offset)
      return digest
    } finally {
      if (buf) this.pool.release([buf])
    }
  }

  // A file of one block is opened, written, finished and closed here at once: no handle stays
  // open for a 'close' to come, and the main thread need not open it again. Its one write
  // allocates what it needs, so nothing is preallocated; and it is written through the page
  // cache: O_DIRECT, which keeps a large copy from flushing the cache, would here make each small
  // file wait for the device and pad its tail, cut again at close.
  private async writeWhole(target: WriteTarget, attributes: Partial<FileAttributes>, bytes: Uint8Array, offset: number): Promise<void> {
    const path = Buffer.from(target.path.buffer, target.path.byteOffset, target.path.byteLength)
    // Only a file announced with its size is finished by its writer.
    const sizeBytes = target.sizeBytes ?? offset + bytes.byteLength
    if (target.createMode !== undefined && this.engine.createFile) {
      if (offset !== 0) throw escpError('ESCP_ERR_PROTOCOL', `the one block of a file at offset ${offset}`)
      await this.engine.createFile(path, bytes, { mode: target.createMode, sizeBytes, sparse: data.sparse, attributes })
      return
    }
    const h = await this.engine.openWrite(path, { create: false, sparse: data.sparse, direct: false, sizeBytes, preallocate: false })
    try {
      await h.write(bytes, offset)
      // An all-zero block that `sparse` did not write leaves the file short.
      if (data.sparse && target.sizeBytes !== null) await h.truncate(target.sizeBytes)
    } catch (err) {
      await h.close().catch(() => {})
      throw err
    }
    await h.finish(attributes)
  }

  private async close(fileId: bigint): Promise<void> {
    const pending = this.writes.get(fileId)
    if (pending) await Promise.allSettled([...pending])
    this.writes.delete(fileId)
    const h = this.handles.get(fileId)
    this.handles.delete(fileId)
    try {
      if (h) await (await h).close()
      post({ t: 'closed', fileId })
    } catch (err) {
      post({ t: 'closed', fileId, error: serializeError(err) })
    }
  }
}

// One listener for the worker's life: the port must never be without one, or messages could
// wait unseen. Whatever comes before the stream is set up waits for it.
let handler: ((msg: ToWorker) => void) | undefined
const early: ToWorker[] = []
port.on('message', (m: ToWorker) => {
  if (handler) handler(m)
  else if (m.t !== 'start') early.push(m)
  else {
    start(m.data).then(
      (h) => {
        handler = h
        for (const e of early.splice(0)) h(e)
        post({ t: 'ready' })
      },
      (err) => post({ t: 'fatal', error: serializeError(err) }),
    )
  }
})
