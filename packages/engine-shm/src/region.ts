// The block API for TypeScript: a region (ShmRegion), a producer of one stream (ShmWriter) and
// its consumer (ShmReader). Each thread maps the region itself; slots are views into that
// mapping, so a block is filled or read where it lies. Calls that wait run on native threads.
import { escpError, escpErrorWith } from '@escp/core/plugin'
import type { EscpError } from '@escp/core/plugin'
import { getSystemErrorName } from 'node:util'
import { FOREVER, STREAM_ABORTED, STREAM_DONE, STREAM_ENDED, loadBinding } from './binding'
import type { NativeError, RegionHandle, ShmBinding, StreamState } from './binding'

export { FOREVER } from './binding'
export type { StreamState } from './binding'

export const DEFAULT_BLOCK_BYTES = 1024 * 1024
export const DEFAULT_SLOT_COUNT = 16
export const DEFAULT_STREAM_COUNT = 64
const REGION_NAME = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}$/

export interface CreateRegionOptions {
  /** A multiple of 4096, 4 KiB to 64 MiB. Default 1 MiB (escp's block size). */
  blockSizeBytes?: number
  /** Slots (blocks in flight); memory is slotCount × blockSizeBytes. Default 16. */
  slotCount?: number
  /** Streams that may be open at once. Default 64. */
  streamCount?: number
}

/** The binding, or ESCP_ERR_PLUGIN_UNAVAILABLE with the reason. */
export function shmBinding(): ShmBinding {
  const load = loadBinding()
  if (!load.ok) throw escpError('ESCP_ERR_PLUGIN_UNAVAILABLE', 'engine', 'shm', load.reason)
  return load.binding
}

/** A native error as ESCP_ERR_SHM, with errno and syscall kept. */
export function shmError(err: unknown, what: string): EscpError {
  const e = err as Partial<NativeError>
  const errno = typeof e?.errno === 'number' ? getSystemErrorName(e.errno) : e?.code
  let why = e instanceof Error ? e.message.replace(/^[a-z_]+: /, '') : String(err)
  if (errno && typeof e?.errno === 'number') why = `${errno}: ${why}`
  if (e?.code === 'ESHMABORTED') why = `aborted: ${why}`
  return escpErrorWith('ESCP_ERR_SHM', { errno, errnoNumber: e?.errno, syscall: e?.syscall, cause: err }, what, why)
}

function checkRegionName(name: string): void {
  if (typeof name !== 'string' || !REGION_NAME.test(name)) {
    throw escpError('ESCP_ERR_SHM', `region '${name}'`, 'a region name is 1-100 of A-Z a-z 0-9 . _ - (not starting with a dot)')
  }
}

function checkStreamName(name: string): void {
  if (typeof name !== 'string' || name.length === 0 || Buffer.byteLength(name) > 127 || name.includes('\0')) {
    throw escpError('ESCP_ERR_SHM', `stream '${name}'`, 'a stream name is 1-127 bytes without NUL')
  }
}

function checkTimeout(timeoutMs: number): void {
  if (!Number.isInteger(timeoutMs) || timeoutMs < FOREVER || timeoutMs > 2 ** 31 - 1) {
    throw escpError('ESCP_ERR_BAD_ARGUMENT', `a timeout must be milliseconds (or FOREVER), got ${timeoutMs}`)
  }
}

export class ShmRegion {
  private slotArea: ArrayBuffer | undefined
  private closed = false

  private constructor(
    private readonly b: ShmBinding,
    readonly name: string,
    private readonly handle: RegionHandle,
    /** The creator removes the region when it closes it. */
    readonly created: boolean,
  ) {}

  /** Creates /dev/shm/escp-NAME; fails with EEXIST when it exists. */
  static async create(name: string, options: CreateRegionOptions = {}): Promise<ShmRegion> {
    checkRegionName(name)
    const b = shmBinding()
    const bs = options.blockSizeBytes ?? DEFAULT_BLOCK_BYTES
    const slots = options.slotCount ?? DEFAULT_SLOT_COUNT
    const streams = options.streamCount ?? DEFAULT_STREAM_COUNT
    if (!Number.isInteger(bs) || bs < 4096 || bs > 64 * 1024 * 1024 || bs % 4096 !== 0) {
      throw escpError('ESCP_ERR_SHM', `region '${name}'`, `the block size must be a multiple of 4096 from 4 KiB to 64 MiB, got ${bs}`)
    }
    if (!Number.isInteger(slots) || slots < 1 || slots > 4096) throw escpError('ESCP_ERR_SHM', `region '${name}'`, `the slot count must be 1 to 4096, got ${slots}`)
    if (!Number.isInteger(streams) || streams < 1 || streams > 1024) throw escpError('ESCP_ERR_SHM', `region '${name}'`, `the stream count must be 1 to 1024, got ${streams}`)
    try {
      return new ShmRegion(b, name, await b.open(name, true, bs, slots, streams), true)
    } catch (err) {
      throw shmError(err, `region '${name}'`)
    }
  }

  /** Attaches to an existing region. */
  static async open(name: string): Promise<ShmRegion> {
    checkRegionName(name)
    const b = shmBinding()
    try {
      return new ShmRegion(b, name, await b.open(name, false), false)
    } catch (err) {
      throw shmError(err, `region '${name}'`)
    }
  }

  get blockSizeBytes(): number {
    return this.handle.blockSizeBytes
  }

  get slotCount(): number {
    return this.handle.slotCount
  }

  get streamCount(): number {
    return this.handle.streamCount
  }

  /** Slots claimed, filled or taken right now (never more than slotCount). */
  slotsInUse(): number {
    return this.b.info(this.id).slotsInUse
  }

  /** This thread's view of slot `index` (blockSizeBytes long). */
  slotView(index: number): Uint8Array {
    this.slotArea ??= this.b.slots(this.id)
    return new Uint8Array(this.slotArea, index * this.handle.blockSizeBytes, this.handle.blockSizeBytes)
  }

  /** Begins a stream as its producer; sizeBytes undefined: known only when it ends. */
  writer(stream: string, options: { sizeBytes?: number } = {}): ShmWriter {
    checkStreamName(stream)
    const size = options.sizeBytes
    if (size !== undefined && (!Number.isSafeInteger(size) || size < 0)) throw escpError('ESCP_ERR_SHM', `stream '${stream}'`, `a size must be a whole number of bytes, got ${size}`)
    try {
      return new ShmWriter(this, this.b, stream, this.b.begin(this.id, stream, size ?? -1), size)
    } catch (err) {
      throw shmError(err, this.describe(stream))
    }
  }

  /** Becomes the consumer of stream `name`, waiting up to timeoutMs for it to begin. */
  async reader(stream: string, options: { timeoutMs?: number } = {}): Promise<ShmReader> {
    checkStreamName(stream)
    const timeout = options.timeoutMs ?? 0
    checkTimeout(timeout)
    try {
      return new ShmReader(this, this.b, stream, await this.b.attach(this.id, stream, timeout))
    } catch (err) {
      throw shmError(err, this.describe(stream))
    }
  }

  /** Ends this handle's waits (they fail with ECANCELED) and, for the creator, removes the region. */
  close(): void {
    if (this.closed) return
    this.closed = true
    this.b.close(this.handle.id, this.created)
  }

  /** @internal */
  get id(): number {
    if (this.closed) throw escpError('ESCP_ERR_SHM', `region '${this.name}'`, 'it is closed')
    return this.handle.id
  }

  /** @internal */
  describe(stream: string): string {
    return `stream '${stream}' of region '${this.name}'`
  }
}

/** A slot claimed by a producer: fill `data` (blockSizeBytes), then commit it. */
export interface ShmSlot {
  index: number
  data: Uint8Array
}

/** The producer of one stream. */
export class ShmWriter {
  /** @internal */
  constructor(
    private readonly region: ShmRegion,
    private readonly b: ShmBinding,
    readonly name: string,
    readonly stream: number,
    readonly sizeBytes: number | undefined,
  ) {}

  /** Waits for a free slot: while the consumer is behind, this is where the producer waits. */
  async claim(timeoutMs: number = FOREVER): Promise<ShmSlot> {
    checkTimeout(timeoutMs)
    let index: number
    try {
      index = await this.b.claim(this.region.id, this.stream, timeoutMs)
    } catch (err) {
      throw shmError(err, this.region.describe(this.name))
    }
    return { index, data: this.region.slotView(index) }
  }

  /** Hands `length` bytes of the slot to the consumer as the block at `offset`. */
  commit(slot: ShmSlot, offset: number, length: number): void {
    try {
      this.b.commit(this.region.id, this.stream, slot.index, offset, length)
    } catch (err) {
      throw shmError(err, this.region.describe(this.name))
    }
  }

  /** Gives a claimed slot back unused. */
  unclaim(slot: ShmSlot): void {
    try {
      this.b.unclaim(this.region.id, this.stream, slot.index)
    } catch (err) {
      throw shmError(err, this.region.describe(this.name))
    }
  }

  /** Claims a slot, copies `data` into it (natively) and commits it at `offset`. */
  async write(data: Uint8Array, offset: number, timeoutMs: number = FOREVER): Promise<void> {
    checkTimeout(timeoutMs)
    try {
      await this.b.writeFrom(this.region.id, this.stream, offset, timeoutMs, data)
    } catch (err) {
      throw shmError(err, this.region.describe(this.name))
    }
  }

  /** EOF: every block is committed. */
  end(): void {
    try {
      this.b.end(this.region.id, this.stream)
    } catch (err) {
      throw shmError(err, this.region.describe(this.name))
    }
  }

  abort(message: string): void {
    try {
      this.b.abort(this.region.id, this.stream, message)
    } catch (err) {
      throw shmError(err, this.region.describe(this.name))
    }
  }

  /** Waits until the consumer has taken and released every block of the ended stream. */
  async waitDone(timeoutMs: number = FOREVER): Promise<void> {
    checkTimeout(timeoutMs)
    try {
      await this.b.waitDone(this.region.id, this.stream, timeoutMs)
    } catch (err) {
      throw shmError(err, this.region.describe(this.name))
    }
  }

  state(): StreamState {
    return this.b.state(this.region.id, this.stream)
  }
}

/** A block taken by a consumer: `data` lies in the slot until release(). */
export interface ShmBlock {
  offset: number
  data: Uint8Array
  release(): void
}

/** The consumer of one stream: blocks in offset order. */
export class ShmReader {
  private nextOffset = 0

  /** @internal */
  constructor(
    private readonly region: ShmRegion,
    private readonly b: ShmBinding,
    readonly name: string,
    readonly stream: number,
  ) {}

  /** The declared size, or undefined while a stream of unknown size is open. */
  get sizeBytes(): number | undefined {
    const s = this.state().sizeBytes
    return s < 0 ? undefined : s
  }

  state(): StreamState {
    return this.b.state(this.region.id, this.stream)
  }

  /** Whether the stream ended and every block was taken and released. */
  isDone(): boolean {
    return this.state().state === STREAM_DONE
  }

  /** Whether the producer ended or aborted it. */
  isOver(): boolean {
    const s = this.state().state
    return s === STREAM_ENDED || s === STREAM_DONE || s === STREAM_ABORTED
  }

  /**
   * The next block in offset order, waiting for the producer; null at the end. Rejects with
   * ESCP_ERR_SHM when the stream was aborted ("producer died" when its process is gone).
   */
  async next(timeoutMs: number = FOREVER): Promise<ShmBlock | null> {
    checkTimeout(timeoutMs)
    let t
    try {
      t = await this.b.take(this.region.id, this.stream, this.nextOffset, timeoutMs)
    } catch (err) {
      throw shmError(err, this.region.describe(this.name))
    }
    if (t === null) return null
    this.nextOffset = t.offset + t.length
    const slot = t.slot
    let released = false
    return {
      offset: t.offset,
      data: this.region.slotView(slot).subarray(0, t.length),
      release: () => {
        if (released) return
        released = true
        try {
          this.b.release(this.region.id, this.stream, slot)
        } catch (err) {
          throw shmError(err, this.region.describe(this.name))
        }
      },
    }
  }

  /** Takes the block at `offset`, copies it into `buf` (natively) and releases it; 0 at the end. */
  async readInto(buf: Uint8Array, offset: number, timeoutMs: number = FOREVER): Promise<number> {
    checkTimeout(timeoutMs)
    try {
      return await this.b.readInto(this.region.id, this.stream, offset, timeoutMs, buf)
    } catch (err) {
      throw shmError(err, this.region.describe(this.name))
    }
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<ShmBlock> {
    for (;;) {
      const block = await this.next()
      if (block === null) return
      try {
        yield block
      } finally {
        block.release()
      }
    }
  }

  abort(message: string): void {
    try {
      this.b.abort(this.region.id, this.stream, message)
    } catch (err) {
      throw shmError(err, this.region.describe(this.name))
    }
  }
}
