// The sending side of a session: walks the sources, announces them in batches on the meta
// stream, hands blocks first-come to the data streams (one huge file spreads over every
// stream; many small files spread too), reports each file's digest, and collects verdicts.
// To a peer of protocol 1.1 or later it sends only the blocks of sparse files that hold data; to
// one of 1.2 or later, files whose size is known only at their end (read until a read finds it).
import fs from 'node:fs'
import { escpError, isEscpError } from '../errors'
import type { EscpError } from '../errors'
import type { Checksum } from '../contracts/checksum'
import { MAX_FILE_SIZE_BYTES, displayPath } from '../contracts/io-engine'
import type { IoEngine } from '../contracts/io-engine'
import { MAX_BUNDLE_FILES, MINOR_BUNDLE_DIGESTS, MINOR_BUNDLES, MINOR_OK_RUNS, MINOR_SIZE_AT_END, MINOR_SPARSE_FILES, RecordType } from '../protocol/constants'
import { decodeErrorReport, decodeVerdictBatch, encodeErrorReport, encodeFileBatch, encodeFileDone, encodeSessionEnd, errorFromInfo, errorInfoOf } from '../protocol/messages'
import type { FileDone, FileSpec, Verdict } from '../protocol/messages'
import type { Session } from '../protocol/session'
import { SourceDirectories, enumerateSources } from './enumerate'
import type { SourceEntry, SourceIssue } from './enumerate'
import { dataBlocks } from './holes'
import type { BlockRun, DataBlocks } from './holes'
import { BUNDLE_FILE_FRACTION } from './options'
import { OrderedDigest, ZeroBlockDigests } from './ordered-digest'
import { MetaBatch, SessionSide } from './session-side'
import type { SenderLink } from './stream-link'
import type { FileFailure, TransferProgress, TransferSummary } from './summary'
import type { FromWorker } from './worker-protocol'
import { bundleTrailerBytes, deserializeError } from './worker-protocol'

const BATCH_ENTRIES = 256
/** Entries announced and not yet answered by a verdict; bounds memory on both sides. */
const MAX_OUTSTANDING = 8192

interface OutEntry {
  id: bigint
  entry: SourceEntry
  /**
   * Blocks to send: all of the file's, or those holding data when its holes are skipped. For a
   * file whose size is known only at its end: 0, then the count its size makes once known.
   */
  blocks: number
  /** The file's size; null until a read finds the end of a file whose size is known only then. */
  sizeBytes: number | null
  /** The size is known only at the end: full blocks are read in order until a read finds it. */
  toEnd: boolean
  /** Reads handed out and not yet answered. */
  reading: number
  /** Nothing more is read of it (sealed or failed): its held directory goes once `reading` is 0. */
  readAll: boolean
  /** The blocks to send as runs of indices, in order. */
  runs: BlockRun[]
  /** The run that holds `nextBlock`; runs.length once every block is handed out. */
  run: number
  nextBlock: number
  /** Bytes of the blocks skipped as holes (FileSpec.sparse_bytes). */
  holeBytes: number
  sealed: number
  /** Made with the first block digest that comes, or at the file's end (see digestOf). */
  digest: OrderedDigest | null
  /** Sent in a bundle. */
  bundled: boolean
  readers: Set<SenderLink>
  failed?: EscpError
  settled: boolean
}

export interface SenderOptions {
  sources: readonly string[]
  recursive: boolean
  blockSizeBytes: number
  checksum: Checksum | null
  /** The main thread's engine: it tells where sparse files hold data. */
  engine: IoEngine
  onProgress?: (p: TransferProgress) => void
  onIssue?: (issue: SourceIssue) => void
  /** Stops the transfer when it aborts (stopOn). */
  signal?: AbortSignal
}

export class Sender extends SessionSide<SenderLink> {
  /** Entries announced and not yet answered (and files that failed here). */
  private readonly entries = new Map<bigint, OutEntry>()
  private readonly queue: OutEntry[] = []
  private readonly failures: FileFailure[] = []
  private readonly warnings: SourceIssue[] = []
  private batch: OutEntry[] = []
  private readonly completions = new MetaBatch<FileDone>((done) => this.queueMeta(() => this.session.meta.sendMessage(RecordType.FileDone, encodeFileDone(done))))
  private nextId = 0n
  private seq = 0
  private outstanding = 0
  private entriesOk = 0
  private bytesDone = 0
  private bytesTotal = 0
  private holeBytes = 0
  private wireBytes = 0
  private enumerationDone = false
  /** A flush of the batch is due at the end of this turn (the streams are idle). */
  private flushSoon = false
  private unsealedFiles = 0
  private readonly started = Date.now()
  /** Past its share of descriptors, the walk waits for files to be read: they go now. */
  private readonly directories = new SourceDirectories(() => this.flushBatch(false))
  private readonly zeros: ZeroBlockDigests | null
  /** Holes are skipped only for a peer whose protocol includes it (1.1). */
  private readonly skipsHoles: boolean
  /** Files whose size is known only at their end go only to a peer whose protocol carries them (1.2). */
  private readonly sendsSizeAtEnd: boolean
  /** Small files go together in Bundle records only to a peer whose protocol has them (1.3). */
  private readonly bundles: boolean
  /** Bundles carry their files' digests, and their files get no FileDone (1.4). */
  private readonly bundleDigests: boolean
  /** The room a file takes in a bundle's trailer (1.4): its status and its digest. */
  private readonly trailerBytesPerFile: number

  constructor(
    session: Session,
    links: SenderLink[],
    private readonly options: SenderOptions,
  ) {
    super(session)
    this.links = links
    this.zeros = options.checksum ? new ZeroBlockDigests(options.checksum, options.blockSizeBytes) : null
    this.skipsHoles = session.sharedMinor >= MINOR_SPARSE_FILES
    this.sendsSizeAtEnd = session.sharedMinor >= MINOR_SIZE_AT_END
    this.bundles = session.sharedMinor >= MINOR_BUNDLES
    this.bundleDigests = session.sharedMinor >= MINOR_BUNDLE_DIGESTS
    this.trailerBytesPerFile = this.bundleDigests ? bundleTrailerBytes(1, options.checksum?.digestLengthBytes ?? 0) : 0
  }

  async run(): Promise<TransferSummary> {
    for (const l of this.links) {
      l.on('message', (m: FromWorker) => this.onLinkMessage(m))
      l.once('error', (e: EscpError) => this.abort(e))
    }
    this.noticeEarlyFailures()
    const unwatch = this.stopOn(this.options.signal)
    const metaDone = this.readMeta()
    metaDone.catch((e: EscpError) => this.abort(e))
    try {
      for await (const entry of enumerateSources(this.options.sources, { recursive: this.options.recursive, onIssue: (i) => this.onIssue(i), engine: this.options.engine, directories: this.directories })) {
        this.check()
        if (entry.sizeBytes === null && !this.sendsSizeAtEnd) {
          this.onIssue({ path: displayPath(entry.absPath), severity: 'error', error: escpError('ESCP_ERR_SOURCE', displayPath(entry.absPath), `its size is known only when it ends, and the receiver speaks protocol 1.${this.session.sharedMinor}, which announces every file with its size (1.${MINOR_SIZE_AT_END} does not); install escp 1.${MINOR_SIZE_AT_END} or later there, or end the source before sending it`) })
          continue
        }
        this.add(entry, await this.dataBlocksOf(entry))
        while (this.outstanding >= MAX_OUTSTANDING) await this.sleep()
      }
      this.enumerationDone = true
      this.flushBatch(true)
      this.pump()
      while (this.unsealedFiles > 0) await this.sleep()
      this.completions.flush()
      this.queueMeta(() => this.session.meta.sendMessage(RecordType.SessionEnd, encodeSessionEnd({ files: this.nextId, bytes: BigInt(this.bytesDone) })))
      await this.metaSent()
      await metaDone
      this.check()
      if (this.outstanding > 0) throw escpError('ESCP_ERR_TRANSFER', `the receiver ended the session with ${this.outstanding} entries unanswered`)
      await Promise.all(this.links.map((l) => l.sendEnd()))
      await this.session.meta.end()
    } catch (err) {
      this.abort(isEscpError(err) ? err : escpError('ESCP_ERR_TRANSFER', String(err)))
      throw this.fatal
    } finally {
      unwatch()
      await Promise.all(this.links.map((l) => l.close()))
      this.session.meta.close()
      await this.directories.closeAll()
    }
    this.progress()
    return {
      ok: this.failures.length === 0 && this.warnings.every((w) => w.severity === 'warning'),
      entries: Number(this.nextId),
      entriesOk: this.entriesOk,
      failures: this.failures,
      warnings: this.warnings,
      bytes: this.bytesDone,
      holeBytes: this.holeBytes,
      wireBytes: this.wireBytes,
      elapsedMs: Date.now() - this.started,
      streams: this.links.length,
      cipher: this.session.keys.cipher.name,
      checksum: this.options.checksum?.name ?? 'none',
      compressor: this.session.init.compressor,
    }
  }

  // A walk waiting for files to be read (SourceDirectories) must not wait on a failed session.
  protected override abort(err: EscpError): void {
    this.directories.stop()
    super.abort(err)
  }

  private onIssue(issue: SourceIssue): void {
    this.warnings.push(issue)
    if (issue.severity === 'error') {
      this.failures.push({ path: issue.path, error: issue.error })
      // The receiver reports failures too when it is the side the user sees (a pull).
      const e = issue.error
      this.queueMeta(() =>
        this.session.meta.sendMessage(
          RecordType.Error,
          encodeErrorReport({ path: Buffer.from(issue.path), fatal: false, error: errorInfoOf(e) }),
        ),
      )
    }
    this.options.onIssue?.(issue)
  }

  /**
   * The blocks of a sparse file that hold data, or null to send it whole: for a peer that takes
   * holes, a file that occupies less space than its size and spans more than one block (a
   * one-block file gains little, and small compressed files on ZFS would cost an open each).
   * An engine that cannot tell (null extents), or that fails here, leaves the file whole; a
   * file that cannot be read then fails in the stream worker, with its error.
   */
  private async dataBlocksOf(entry: SourceEntry): Promise<DataBlocks | null> {
    if (!this.skipsHoles || entry.type !== 'file' || entry.sizeBytes === null || entry.allocatedBytes >= entry.sizeBytes || entry.sizeBytes <= this.options.blockSizeBytes) return null
    let extents
    try {
      const h = await this.options.engine.openRead(entry.readAt)
      try {
        extents = await h.extents()
      } finally {
        await h.close()
      }
    } catch {
      return null
    }
    if (!extents) return null
    const d = dataBlocks(extents, entry.sizeBytes, this.options.blockSizeBytes)
    return d.holeBytes > 0 ? d : null
  }

  private add(entry: SourceEntry, data: DataBlocks | null): void {
    const id = this.nextId++
    const toEnd = entry.type === 'file' && entry.sizeBytes === null
    const all = entry.type === 'file' ? Math.ceil((entry.sizeBytes ?? 0) / this.options.blockSizeBytes) : 0
    const runs = data ? data.runs : all > 0 ? [{ start: 0, end: all }] : []
    const e: OutEntry = {
      id,
      entry,
      blocks: runs.reduce((n, r) => n + r.end - r.start, 0),
      sizeBytes: entry.sizeBytes,
      toEnd,
      reading: 0,
      readAll: false,
      runs,
      run: 0,
      nextBlock: runs.length > 0 ? runs[0].start : 0,
      holeBytes: data ? data.holeBytes : 0,
      sealed: 0,
      digest: null,
      bundled: false,
      readers: new Set(),
      settled: false,
    }
    this.entries.set(id, e)
    this.outstanding++
    // Progress counts the bytes to send: holes are not work. A file of unknown size adds its
    // blocks as they are read.
    this.bytesTotal += (entry.sizeBytes ?? 0) - e.holeBytes
    if (entry.type === 'file') this.unsealedFiles++
    this.batch.push(e)
    // Small batches while the streams are idle keep them busy; full ones otherwise. An idle
    // stream waits for the end of this turn, so that the entries found together (a directory's
    // window of lookups) go together, and their small files in bundles.
    if (this.batch.length >= BATCH_ENTRIES) this.flushBatch(false)
    else if (!this.flushSoon && this.queue.length === 0 && this.links.some((l) => l.hasCredit)) {
      this.flushSoon = true
      setImmediate(() => {
        this.flushSoon = false
        if (!this.enumerationDone) this.flushBatch(false)
      })
    }
  }

  private flushBatch(last: boolean): void {
    const batch = this.batch
    if (batch.length === 0 && !last) return
    this.batch = []
    const files: FileSpec[] = batch.map(({ id, entry, holeBytes }) => ({
      id,
      path: entry.name,
      type: entry.type,
      size: BigInt(entry.sizeBytes ?? 0),
      sizeAtEnd: entry.sizeBytes === null,
      mode: entry.mode,
      uid: entry.uid,
      gid: entry.gid,
      atimeNs: entry.atimeNs,
      mtimeNs: entry.mtimeNs,
      linkTarget: entry.linkTarget,
      sparseBytes: BigInt(holeBytes),
    }))
    this.queueMeta(() => this.session.meta.sendMessage(RecordType.FileBatch, encodeFileBatch({ files, last })))
    for (const e of batch) {
      if (e.entry.type !== 'file') continue
      if (e.blocks === 0 && !e.toEnd) this.fileSealed(e)
      else this.queue.push(e)
    }
    this.pump()
  }

  // First-come: each free slot of a stream takes the next block of the oldest unfinished file.
  private pump(): void {
    for (;;) {
      let link: SenderLink | undefined
      for (const l of this.links) if (l.hasCredit && (!link || l.busy < link.busy)) link = l
      if (!link) return
      let e = this.queue[0]
      // A file of unknown size leaves the queue once its end is known: every block before it has been handed out.
      while (e && (e.failed || (e.toEnd && e.sizeBytes !== null))) {
        this.queue.shift()
        e = this.queue[0]
      }
      if (!e) {
        if (!this.enumerationDone && this.batch.length > 0) this.flushBatch(false)
        if (!this.queue[0]) return
        continue
      }
      if (e.toEnd) {
        this.readToEnd(e, link)
        continue
      }
      if (this.bundles && this.bundled(e)) {
        const files = this.takeBundle()
        if (files.length > 1) {
          link.readBundle(
            this.seq++,
            files.map((f) => {
              f.reading++
              return { fileId: f.id, path: f.entry.readAt, length: f.sizeBytes as number }
            }),
            this.bundleDigests ? files.length * this.trailerBytesPerFile : null,
          )
          continue
        }
      }
      const block = e.nextBlock++
      if (e.nextBlock >= e.runs[e.run].end && ++e.run < e.runs.length) e.nextBlock = e.runs[e.run].start
      if (e.run >= e.runs.length) this.queue.shift()
      const offset = block * this.options.blockSizeBytes
      const length = Math.min(this.options.blockSizeBytes, (e.sizeBytes as number) - offset)
      // A file of one block is closed by the worker that reads it: one message less per small file.
      const only = e.blocks === 1
      if (!only) e.readers.add(link)
      e.reading++
      link.read(this.seq++, e.id, e.entry.readAt, offset, length, only)
    }
  }

  /** A file small enough to go in a bundle: one block, sent whole, of at most a fraction of a block. */
  private bundled(e: OutEntry): boolean {
    return !e.toEnd && e.blocks === 1 && e.holeBytes === 0 && e.nextBlock === 0 && (e.sizeBytes as number) <= this.options.blockSizeBytes / BUNDLE_FILE_FRACTION
  }

  /**
   * Takes the files at the head of the queue that go in one bundle: small files of consecutive
   * entries (a Bundle record names only its first and its count), together, with the trailer of
   * their digests (1.4), at most a block. One file alone is left at the head, to go as a block.
   */
  private takeBundle(): OutEntry[] {
    const files: OutEntry[] = [this.queue[0]]
    let bytes = (this.queue[0].sizeBytes as number) + this.trailerBytesPerFile
    for (let i = 1; i < this.queue.length && files.length < MAX_BUNDLE_FILES; i++) {
      const e = this.queue[i]
      const more = (e.sizeBytes as number) + this.trailerBytesPerFile
      if (e.failed || e.id !== files[files.length - 1].id + 1n || !this.bundled(e) || bytes + more > this.options.blockSizeBytes) break
      files.push(e)
      bytes += more
    }
    if (files.length > 1) {
      this.queue.splice(0, files.length)
      for (const e of files) {
        e.nextBlock = 1
        e.bundled = true
      }
    }
    return files
  }

  /**
   * The next full block of a file whose size is known only at its end. Its count is unknown, so
   * reads go on, each in its stream's credit, until one finds the end.
   */
  private readToEnd(e: OutEntry, link: SenderLink): void {
    const bs = this.options.blockSizeBytes
    const offset = e.nextBlock * bs
    if (offset + bs > MAX_FILE_SIZE_BYTES) {
      this.fileFailed(e, escpError('ESCP_ERR_FILE_TOO_LARGE', shownOf(e), offset + bs))
      return
    }
    e.nextBlock++
    e.reading++
    e.readers.add(link)
    link.read(this.seq++, e.id, e.entry.readAt, offset, bs, false, true)
  }

  private onLinkMessage(m: FromWorker): void {
    if (m.t === 'sealed') {
      const e = this.entries.get(m.fileId) as OutEntry
      this.bytesDone += m.length
      this.wireBytes += m.wireBytes
      this.answeredRead(e)
      if (e.toEnd) this.bytesTotal += m.length
      if (!e.failed) {
        const index = m.offset / this.options.blockSizeBytes
        if (m.digest) this.digestOf(e)?.add(index, m.digest)
        if (!e.toEnd) {
          if (++e.sealed === e.blocks) this.fileSealed(e)
        } else {
          e.sealed++
          // A short block is the last: the file ends with it.
          if (m.length < this.options.blockSizeBytes) this.endFound(e, m.offset + m.length)
          else this.maybeEnded(e)
        }
      }
      this.progress()
    } else if (m.t === 'readEnded') {
      const e = this.entries.get(m.fileId) as OutEntry
      this.answeredRead(e)
      if (!e.failed) this.endFound(e, m.sizeBytes)
    } else if (m.t === 'readFailed') {
      const e = this.entries.get(m.fileId) as OutEntry
      this.answeredRead(e)
      if (!e.failed) this.fileFailed(e, deserializeError(m.error))
    }
    this.pump()
    this.poke()
  }

  // Every read finds the same end, or the source changed under us.
  private endFound(e: OutEntry, sizeBytes: number): void {
    if (e.sizeBytes !== null && e.sizeBytes !== sizeBytes) {
      this.fileFailed(e, escpError('ESCP_ERR_SOURCE_CHANGED', shownOf(e), `one read found its end at ${e.sizeBytes} bytes, another at ${sizeBytes}`))
      return
    }
    e.sizeBytes = sizeBytes
    this.maybeEnded(e)
  }

  // A file of unknown size is sealed once its end is known and every read handed out has answered.
  private maybeEnded(e: OutEntry): void {
    if (e.sizeBytes === null || e.reading > 0) return
    const blocks = Math.ceil(e.sizeBytes / this.options.blockSizeBytes)
    if (e.sealed !== blocks || (e.digest && !e.digest.end(e.sizeBytes))) {
      this.fileFailed(e, escpError('ESCP_ERR_SOURCE_CHANGED', shownOf(e), `${e.sealed} blocks were read where its size of ${e.sizeBytes} bytes makes ${blocks}`))
      return
    }
    e.blocks = blocks
    this.fileSealed(e)
  }

  /**
   * A file read over more than one block is checked once read: one modified or replaced
   * meanwhile may mix old and new bytes that its digest, taken of what was read, would still
   * vouch for. It fails rather than arrive so (GNU tar warns of the same; scp and rsync say
   * nothing). A file read in one call is not asked again: its one read is the copy.
   */
  private fileSealed(e: OutEntry): void {
    if (e.blocks <= 1 || e.entry.sizeBytes === null) return this.fileSealedUnchanged(e)
    void changeSince(e.entry).then((why) => {
      if (why) this.fileFailed(e, escpError('ESCP_ERR_SOURCE_CHANGED', shownOf(e), why))
      else this.fileSealedUnchanged(e)
      this.pump()
      this.poke()
    })
  }

  private fileSealedUnchanged(e: OutEntry): void {
    this.unsealedFiles--
    this.holeBytes += e.holeBytes
    this.closeReaders(e)
    this.readAll(e)
    // A bundle of 1.4 carried the file's digest: no FileDone follows it.
    if (e.bundled && this.bundleDigests) return
    const digest = this.digestOf(e)
    this.completions.add({ id: e.id, size: BigInt(e.sizeBytes as number), blocks: BigInt(e.blocks), digest: digest ? digest.digest() : new Uint8Array(0) })
  }

  /**
   * The file's digest being folded, made when first needed: most small files go in bundles
   * that carry their digests (1.4), and need none here. Null without a checksum.
   */
  private digestOf(e: OutEntry): OrderedDigest | null {
    if (!this.zeros) return null
    return (e.digest ??= new OrderedDigest(this.zeros, e.sizeBytes))
  }

  // An unreadable source: the receiver is told to drop the file; no verdict will come.
  private fileFailed(e: OutEntry, given: EscpError): void {
    const error = this.directories.shownError(given)
    e.failed = error
    this.unsealedFiles--
    this.closeReaders(e)
    this.readAll(e)
    this.failures.push({ path: shownOf(e), error })
    this.settle(e)
    this.queueMeta(() =>
      this.session.meta.sendMessage(
        RecordType.Error,
        encodeErrorReport({ fileId: e.id, path: e.entry.name, fatal: false, error: errorInfoOf(error) }),
      ),
    )
  }

  /**
   * Nothing more of the file is read: the directory held for it may close, once the reads
   * already handed out have answered (a failed file may have some under way in other workers,
   * which must not find its descriptor's number given to something else).
   */
  private readAll(e: OutEntry): void {
    e.readAll = true
    this.releaseDirectory(e)
  }

  private answeredRead(e: OutEntry): void {
    e.reading--
    this.releaseDirectory(e)
  }

  private releaseDirectory(e: OutEntry): void {
    if (!e.readAll || e.reading > 0 || !e.entry.held) return
    e.entry.held.releaseFile()
    e.entry.held = undefined
  }

  private closeReaders(e: OutEntry): void {
    for (const l of e.readers) l.closeFile(e.id)
    e.readers.clear()
  }

  private settle(e: OutEntry): void {
    if (e.settled) return
    e.settled = true
    // Memory for what is under way only: an answered entry whose blocks are all sealed has
    // nothing more coming. A failed file may still have blocks in a worker, and stays.
    if (!e.failed && e.sealed === e.blocks) this.entries.delete(e.id)
    this.outstanding--
    this.poke()
  }

  // An entry's verdict: `v`, or ok (from a run) when null.
  private answered(id: bigint, v: Verdict | null): void {
    const e = this.entries.get(id)
    if (!e || e.settled) throw escpError('ESCP_ERR_PROTOCOL', `a verdict for ${e || id < this.nextId ? 'an entry already answered' : `unknown entry ${id}`}`)
    if (!v || v.ok) {
      this.entriesOk++
    } else {
      const err = v.error ? errorFromInfo(v.error) : escpError('ESCP_ERR_TRANSFER', 'the receiver refused it without a reason')
      this.failures.push({ path: shownOf(e), error: err })
    }
    this.settle(e)
  }

  private async readMeta(): Promise<void> {
    for await (const rec of this.session.meta) {
      if (rec.type === RecordType.Verdicts) {
        const { verdicts, okRuns } = decodeVerdictBatch(rec.payload)
        if (okRuns.length > 0 && this.session.sharedMinor < MINOR_OK_RUNS) throw escpError('ESCP_ERR_PROTOCOL', `verdicts as runs in a protocol 1.${this.session.sharedMinor} session`)
        for (const v of verdicts) this.answered(v.id, v)
        for (const r of okRuns) {
          // Every entry of a run must be one announced: a run cannot make this loop long.
          if (r.first + r.count > this.nextId) throw escpError('ESCP_ERR_PROTOCOL', `verdicts for entries ${r.first} to ${r.first + r.count - 1n}, of which only ${this.nextId} were announced`)
          for (let id = r.first; id < r.first + r.count; id++) this.answered(id, null)
        }
      } else if (rec.type === RecordType.Error) {
        const r = decodeErrorReport(rec.payload)
        const err = errorFromInfo(r.error)
        if (r.fatal) throw err
        this.failures.push({ path: displayPath(r.path), error: err })
      } else if (rec.type !== RecordType.Keepalive) {
        throw escpError('ESCP_ERR_PROTOCOL', `a ${RecordType[rec.type]} record from the receiver on the meta stream`)
      }
    }
  }


  private progress(): void {
    this.options.onProgress?.({
      bytesDone: this.bytesDone,
      bytesTotal: this.bytesTotal,
      filesDone: Number(this.nextId) - this.outstanding,
      filesTotal: Number(this.nextId),
      enumerationDone: this.enumerationDone,
      elapsedMs: Date.now() - this.started,
    })
  }
}

/**
 * How the file at `entry`'s name differs now from what the walk saw (another kind of file, its
 * size, its modification time), or undefined. A name that is gone says nothing: a file removed
 * while it was read was read whole all the same.
 */
async function changeSince(entry: SourceEntry): Promise<string | undefined> {
  let st: fs.BigIntStats
  try {
    st = await fs.promises.lstat(entry.readAt, { bigint: true })
  } catch {
    return undefined
  }
  if (!st.isFile()) return 'its name is no longer a regular file'
  if (st.size !== BigInt(entry.sizeBytes as number)) return `its size went from ${entry.sizeBytes} to ${st.size} bytes while it was read`
  if (st.mtimeNs !== entry.mtimeNs) return 'it was modified while it was read'
  return undefined
}

/** A source's name as shown to people: made for errors and failures only, not per file. */
function shownOf(e: OutEntry): string {
  return displayPath(e.entry.absPath)
}
