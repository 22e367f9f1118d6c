// The receiving side of a session: checks every announced name with the path guard, creates
// directories and links, writes files under temporary names beside their final ones, checks
// each file's digest against the sender's, and only then renames it into place. A file that
// fails never appears under its final name. Every entry gets a verdict. Blocks a sender skipped
// as holes (protocol 1.1) are never written, so they stay holes in the fresh temporary file. A
// file whose size is known only at its end (1.2) is checked against the size its FileDone gives.
import crypto from 'node:crypto'
import fs from 'node:fs'
import { escpError, ioError, isEscpError } from '../errors'
import type { EscpError } from '../errors'
import type { Checksum } from '../contracts/checksum'
import type { IoEngine } from '../contracts/io-engine'
import { MAX_FILE_SIZE_BYTES, displayPath } from '../contracts/io-engine'
import { MINOR_BUNDLE_DIGESTS, MINOR_BUNDLES, MINOR_OK_RUNS, MINOR_SIZE_AT_END, MINOR_SPARSE_FILES, RecordType } from '../protocol/constants'
import { decodeErrorReport, decodeFileBatch, decodeFileDone, decodeSessionEnd, encodeErrorReport, encodeVerdicts, errorFromInfo, errorInfoOf, okRunsOf } from '../protocol/messages'
import type { FileDone, FileSpec, Verdict } from '../protocol/messages'
import type { Session } from '../protocol/session'
import { blocksFitHoles } from './holes'
import { OrderedDigest, ZeroBlockDigests } from './ordered-digest'
import { MetaBatch, SessionSide } from './session-side'
import { checkRelativePath, throughDirectory } from './paths'
import { descriptorShare } from './descriptors'
import type { Destination } from './paths'
import type { ReceiverLink } from './stream-link'
import type { FileFailure, TransferProgress } from './summary'
import type { BundlePart, FromWorker, WriteTarget } from './worker-protocol'
import { bundleTrailerBytes, deserializeError } from './worker-protocol'

interface InFile {
  spec: FileSpec
  /**
   * A file already at the final name, which the copy replaces: without -p it keeps that file's
   * permissions, as scp and cp keep them when they write over a file; not its setuid and setgid
   * bits, which new content must not inherit, nor its owner (the copy is the writer's, as
   * rsync's is: giving it away could fail where the writer may not chown).
   */
  kept?: { mode: number }
  temp: Buffer
  final: Buffer
  target: WriteTarget | null
  /** The sender skips the blocks of this file that lie in holes (FileSpec.sparse_bytes > 0). */
  holes: boolean
  /** The file's size: announced, or for one whose size is known only at its end, null until its FileDone. */
  sizeBytes: number | null
  /** Until the size is known: the end of the furthest block written, and the end of the one short block. */
  furthestBytes: number
  shortEndBytes: number | null
  /** Blocks handed to a stream worker (to write or to drop); never more than FileDone counts. */
  claimed: number
  /** Blocks the workers have answered for. */
  processed: number
  /** Made with the first block digest that comes, or when the file is judged (see digestOf). */
  digest: OrderedDigest | null
  /** Claimed by a bundle that carries its digest (1.4): it may have no other record, and no FileDone. */
  inBundle: boolean
  /** Verified, written and renamed to its final name by the worker of its bundle (1.4). */
  placed: boolean
  /** Streams whose workers hold the file open; each closes it before the file is finished. */
  writers: Set<ReceiverLink>
  /** The temporary file is being created: its blocks wait for it, and so does finishing it. */
  creating: Promise<void> | null
  /** A file of one block, which the worker that writes it also finishes and closes. */
  finishedByWriter: boolean
  done?: FileDone
  failed?: EscpError
  /** The digest of what was written here, once computed. */
  written?: Uint8Array
  /** The sender dropped the file (unreadable): no verdict is owed. */
  dropped: boolean
  /** finishFile() under way (or done), once begun. */
  finished?: Promise<void>
  /** A discarding engine has been told the file's outcome (finishInSink). */
  sinkTold?: boolean
  settled: boolean
}

export interface ReceiverOptions {
  destination: Destination
  checksum: Checksum | null
  /** The main thread's engine, for the last steps of each file (size, attributes). */
  engine: IoEngine
  blockSizeBytes: number
  preserve: boolean
  onProgress?: (p: TransferProgress) => void
  /** Stops the transfer when it aborts (stopOn): unfinished files are removed. */
  signal?: AbortSignal
}

export interface ReceiverResult {
  entries: number
  entriesOk: number
  failed: number
  bytes: number
  /** Bytes of verified files that the sender skipped as holes, left as holes here. */
  holeBytes: number
  /** Block payload bytes received (after compression). */
  wireBytes: number
  /** Entries that failed here or at the sender, by name (relative to the destination). */
  failures: FileFailure[]
}

const SLASH = 0x2f
const UMASK = process.umask()
const IS_ROOT = process.getuid?.() === 0
/** Temporary files being created at once (a quarter of the descriptors, at most 1,024); the meta stream waits beyond that. */
const MAX_CREATING = descriptorShare(4, 1024)

export class Receiver extends SessionSide<ReceiverLink> {
  /** Entries announced and not yet answered (and files the sender dropped). */
  private readonly files = new Map<bigint, InFile>()
  /** Directories whose attributes are set at the end: their name, and the descriptor held for one, if any. */
  private readonly dirs: Array<{ path: Buffer; held: Buffer | null; spec: FileSpec }> = []
  private readonly failures: FileFailure[] = []
  private readonly verdicts = new MetaBatch<Verdict>((batch) => this.queueMeta(() => this.session.meta.sendMessage(RecordType.Verdicts, this.encodeVerdicts(batch))))
  private sessionEnded = false
  private unsettled = 0
  private entries = 0
  private entriesOk = 0
  private failedCount = 0
  private bytes = 0
  private holeBytes = 0
  private wireBytes = 0
  private bytesAnnounced = 0
  private readonly started = Date.now()
  private readonly zeros: ZeroBlockDigests | null
  private readonly temps = new TempNames()
  private creating = 0
  /** Bundles end with their files' digests, and their files get no FileDone (1.4). */
  readonly bundleDigests: boolean

  constructor(
    session: Session,
    private readonly options: ReceiverOptions,
  ) {
    super(session)
    this.zeros = options.checksum ? new ZeroBlockDigests(options.checksum, options.blockSizeBytes) : null
    this.bundleDigests = session.sharedMinor >= MINOR_BUNDLE_DIGESTS
  }

  /**
   * For the links: where blocks of a file go; null drops them; undefined holds them (not
   * announced yet, or still being placed). Throws ESCP_ERR_PROTOCOL for a block that no
   * announcement can ever claim, which would otherwise hold its stream for good, and for one
   * more block than the file's FileDone counts, which could land during or after verification.
   */
  readonly targetOf = (fileId: bigint): WriteTarget | null | undefined => {
    const f = this.fileFor(fileId)
    return f && this.ready(f) ? this.claim(f) : undefined
  }

  /**
   * For the links: the files of a Bundle record (1.3), each as the one block of its file, or
   * undefined to hold the record until every one of them is announced and placed. Its files are
   * `count` consecutive entries from `firstId`, each a file of known size, at most a block and
   * not empty, whose sizes add up to the record's `rawLength` (with 1.4, with the trailer of
   * their digests, and none of them with a FileDone); anything else is ESCP_ERR_PROTOCOL.
   */
  readonly bundleOf = (firstId: bigint, count: number, rawLength: number): BundlePart[] | undefined => {
    if (this.session.sharedMinor < MINOR_BUNDLES) throw escpError('ESCP_ERR_PROTOCOL', `a bundle record in a protocol 1.${this.session.sharedMinor} session`)
    const files: InFile[] = []
    let total = 0
    for (let i = 0; i < count; i++) {
      const f = this.fileFor(firstId + BigInt(i))
      if (!f) return undefined
      if (f.spec.sizeAtEnd || f.holes || f.spec.size === 0n || f.spec.size > BigInt(this.options.blockSizeBytes)) {
        throw escpError('ESCP_ERR_PROTOCOL', `a bundle holding '${shownOf(f)}', which is not a file of one block sent whole`)
      }
      if (this.bundleDigests && f.done) throw escpError('ESCP_ERR_PROTOCOL', `a bundle holding '${shownOf(f)}', whose FileDone came, where a bundle of protocol 1.${this.session.sharedMinor} carries its digest instead`)
      // Its one record: refused before anything of it is written, not once both are.
      if (this.bundleDigests && f.claimed > 0) throw escpError('ESCP_ERR_PROTOCOL', `a bundle holding '${shownOf(f)}', which came in another record too`)
      total += Number(f.spec.size)
      files.push(f)
    }
    if (this.bundleDigests) total += bundleTrailerBytes(count, this.options.checksum?.digestLengthBytes ?? 0)
    if (total !== rawLength) throw escpError('ESCP_ERR_PROTOCOL', `a bundle of ${rawLength} bytes whose ${count} files announce ${total}${this.bundleDigests ? ' with their digests' : ''}`)
    if (!files.every((f) => this.ready(f))) return undefined
    if (this.bundleDigests) for (const f of files) f.inBundle = true
    return files.map((f) => ({ fileId: f.spec.id, length: Number(f.spec.size), target: this.claim(f) }))
  }

  // The file that a block for `fileId` belongs to; undefined while it may yet be announced.
  private fileFor(fileId: bigint): InFile | undefined {
    const f = this.files.get(fileId)
    if (!f) {
      // Answered entries are forgotten: no block may follow a verdict.
      if (fileId < BigInt(this.entries)) throw escpError('ESCP_ERR_PROTOCOL', `a block for entry ${fileId}, which is already answered`)
      if (this.sessionEnded) throw escpError('ESCP_ERR_PROTOCOL', `a block for entry ${fileId}, which was never announced`)
      return undefined
    }
    if (f.spec.type !== 'file') throw escpError('ESCP_ERR_PROTOCOL', `a block for '${shownOf(f)}', which is not a file`)
    return f
  }

  // Whether a block of the file can go on now: it is placed, or its blocks are dropped.
  private ready(f: InFile): boolean {
    if (f.inBundle) throw escpError('ESCP_ERR_PROTOCOL', `a record for '${shownOf(f)}', which came whole in a bundle with its digest`)
    // Dropped by the sender: blocks already on their way are expected, and no FileDone comes.
    if (f.dropped) return true
    if (!f.failed && !f.target) return false
    if (f.done && f.claimed >= Number(f.done.blocks)) throw tooManyBlocks(f)
    return true
  }

  // A block of a ready file goes to its target, or is dropped (null).
  private claim(f: InFile): WriteTarget | null {
    if (f.dropped) return null
    f.claimed++
    return f.failed ? null : f.target
  }

  async run(links: ReceiverLink[]): Promise<ReceiverResult> {
    this.links = links
    for (const l of links) {
      l.on('message', (m: FromWorker) => this.onLinkMessage(l, m))
      l.once('error', (e: EscpError) => this.abort(e))
    }
    this.noticeEarlyFailures()
    const unwatch = this.stopOn(this.options.signal)
    const { guard } = this.options.destination
    try {
      await guard.open()
      await this.readMeta()
      while (this.unsettled > 0) await this.sleep()
      await this.finishDirectories()
      this.verdicts.flush()
      await this.metaSent()
      this.check()
      // Our END on the meta stream tells the sender every verdict is out; it then ends the
      // data streams, and we answer each END with ours.
      await this.session.meta.end()
      while (links.some((l) => !l.endReceived)) await this.sleep()
      await Promise.all(links.map((l) => l.sendEnd()))
    } catch (err) {
      this.abort(this.shown(isEscpError(err) ? err : escpError('ESCP_ERR_TRANSFER', String(err))))
      // Workers first: one may be creating a temporary file that the cleanup is to remove.
      await Promise.all(links.map((l) => l.close()))
      await this.cleanup()
      // The directories made so far get their modes, rather than stay private (0700).
      await this.finishDirectories()
      throw this.shown(this.fatal as EscpError)
    } finally {
      unwatch()
      await Promise.all(links.map((l) => l.close()))
      this.session.meta.close()
      await guard.close()
    }
    return { entries: this.entries, entriesOk: this.entriesOk, failed: this.failedCount, bytes: this.bytes, holeBytes: this.holeBytes, wireBytes: this.wireBytes, failures: this.failures }
  }

  private async readMeta(): Promise<void> {
    for await (const rec of this.session.meta) {
      this.check()
      switch (rec.type) {
        case RecordType.FileBatch:
          for (const spec of decodeFileBatch(rec.payload).files) {
            await this.announce(spec)
            if (this.creating >= MAX_CREATING) {
              for (const l of this.links) l.pump()
              while (this.creating >= MAX_CREATING) await this.sleep()
            }
          }
          for (const l of this.links) l.pump()
          break
        case RecordType.FileDone:
          for (const d of decodeFileDone(rec.payload)) {
            const f = this.files.get(d.id)
            if (!f || f.done || f.spec.type !== 'file') throw escpError('ESCP_ERR_PROTOCOL', `a FileDone for ${f || d.id < BigInt(this.entries) ? 'a finished entry' : `unknown entry ${d.id}`}`)
            if (f.inBundle) throw escpError('ESCP_ERR_PROTOCOL', `a FileDone for '${shownOf(f)}', whose bundle carries its digest`)
            if (!f.spec.sizeAtEnd && d.size !== f.spec.size) throw escpError('ESCP_ERR_PROTOCOL', `a FileDone for '${shownOf(f)}' whose size disagrees with its announcement`)
            const holeBytes = f.holes ? f.spec.sparseBytes : 0n
            if (!blocksFitHoles(d.size, holeBytes, d.blocks, this.options.blockSizeBytes)) {
              throw escpError('ESCP_ERR_PROTOCOL', `a FileDone for '${shownOf(f)}' whose count of ${d.blocks} blocks disagrees with its size of ${d.size} bytes and ${holeBytes} bytes of holes`)
            }
            f.done = d
            if (f.spec.sizeAtEnd) this.sizeKnown(f, d.size)
            if (!f.dropped && f.claimed > Number(d.blocks)) throw tooManyBlocks(f)
            this.maybeFinish(f)
          }
          break
        case RecordType.Error: {
          const r = decodeErrorReport(rec.payload)
          const err = errorFromInfo(r.error)
          if (r.fatal) throw err
          if (r.fileId === undefined) {
            // A source the sender could not announce (missing, unreadable directory).
            this.failures.push({ path: displayPath(r.path), error: err })
            break
          }
          const f = this.files.get(r.fileId)
          if (!f || f.settled) throw escpError('ESCP_ERR_PROTOCOL', `an error report for unknown or finished entry ${r.fileId}`)
          f.dropped = true
          f.failed = err
          this.maybeFinish(f)
          break
        }
        case RecordType.SessionEnd: {
          const end = decodeSessionEnd(rec.payload)
          if (end.files !== BigInt(this.entries)) throw escpError('ESCP_ERR_PROTOCOL', `the sender counts ${end.files} entries, ${this.entries} were announced`)
          this.sessionEnded = true
          // Blocks still held for an entry never announced now never will be: refuse them.
          for (const l of this.links) l.pump()
          // The sender's meta stream stays open for our verdicts; it ends after them.
          return
        }
        case RecordType.Keepalive:
          break
        default:
          throw escpError('ESCP_ERR_PROTOCOL', `a ${RecordType[rec.type]} record from the sender on the meta stream`)
      }
    }
    throw escpError('ESCP_ERR_PROTOCOL', 'the sender ended the meta stream before SessionEnd')
  }

  private async announce(spec: FileSpec): Promise<void> {
    if (this.sessionEnded) throw escpError('ESCP_ERR_PROTOCOL', 'an entry after SessionEnd')
    if (spec.id !== BigInt(this.entries)) throw escpError('ESCP_ERR_PROTOCOL', `entry ids must count up from 0; got ${spec.id} after ${this.entries}`)
    this.entries++
    const shown = () => displayPath(spec.path)
    if (spec.sparseBytes > spec.size) throw escpError('ESCP_ERR_PROTOCOL', `'${shown()}' announced with ${spec.sparseBytes} bytes of holes in ${spec.size} bytes`)
    // A 1.0 sender sends no holes; its sparse_bytes carries no meaning and is ignored.
    const holes = spec.type === 'file' && spec.sparseBytes > 0n && this.session.sharedMinor >= MINOR_SPARSE_FILES
    if (spec.type === 'file' && spec.sizeAtEnd) {
      if (this.session.sharedMinor < MINOR_SIZE_AT_END) throw escpError('ESCP_ERR_PROTOCOL', `'${shown()}': files of unknown size are not part of protocol 1.${this.session.sharedMinor} transfers`)
      if (spec.size !== 0n || spec.sparseBytes !== 0n) throw escpError('ESCP_ERR_PROTOCOL', `'${shown()}' announced with its size known only at its end, and a size of ${spec.size} bytes (${spec.sparseBytes} of holes)`)
    }
    const f: InFile = {
      spec,
      temp: Buffer.alloc(0),
      final: Buffer.alloc(0),
      target: null,
      holes,
      sizeBytes: spec.sizeAtEnd ? null : Number(spec.size),
      furthestBytes: 0,
      shortEndBytes: null,
      claimed: 0,
      processed: 0,
      digest: null,
      inBundle: false,
      placed: false,
      writers: new Set(),
      creating: null,
      // Holes of a one-block file mean that its block does not come (the file is all hole). An
      // engine that discards has no file to finish: its handles are closed as usual.
      finishedByWriter: spec.type === 'file' && !holes && !spec.sizeAtEnd && spec.size > 0n && spec.size <= BigInt(this.options.blockSizeBytes) && !this.options.engine.discards,
      dropped: false,
      settled: false,
    }
    this.files.set(spec.id, f)
    this.unsettled++
    this.bytesAnnounced += Number(spec.size - (holes ? spec.sparseBytes : 0n))
    try {
      const parts = checkRelativePath(spec.path)
      if (this.options.engine.discards) {
        // A sink that keeps nothing: names are checked, nothing is created.
        if (spec.type === 'file') f.target = { path: Buffer.from(shownOf(f)), sizeBytes: f.sizeBytes, preallocate: false }
        else this.verdict(f, null)
        return
      }
      const { guard, components, onlyDirectory } = this.options.destination
      if (onlyDirectory !== undefined && parts.length === 1 && spec.type !== 'directory') {
        throw escpError('ESCP_ERR_DEST_NOT_DIR', onlyDirectory, 'it does not exist, and only a directory is copied to a new name that ends in /')
      }
      const placed = components(parts)
      if (spec.type === 'directory') {
        const dir = await guard.placeDirectory(placed, shownOf(f), 0o700)
        f.final = dir.path
        // Without -p a directory that was there keeps its mode, as scp leaves it.
        if (dir.made || this.options.preserve) this.dirs.push({ path: f.final, held: dir.held, spec })
        this.verdict(f, null)
        return
      }
      f.final = guard.placeKnown(placed) ?? (await guard.place(placed, shownOf(f)))
      if (spec.type === 'symlink') {
        await this.placeSymlink(f)
        this.verdict(f, null)
      } else {
        // A directory this session made holds no file from before it: nothing to ask there.
        if (!this.options.preserve && !guard.made(f.final.subarray(0, f.final.lastIndexOf(SLASH)))) f.kept = await existingFile(f.final)
        if (f.finishedByWriter && this.options.engine.createFile) this.createByWriter(f)
        else this.createTemp(f)
      }
    } catch (err) {
      if (!isEscpError(err) || err.code === 'ESCP_ERR_PROTOCOL') throw err
      f.failed = err
      // A file's blocks may already be on their way: it settles once they are drained.
      if (spec.type === 'file') this.maybeFinish(f)
      else this.verdict(f, err)
    }
  }

  /**
   * Creates the file's temporary name without waiting for it: the files of a batch are created
   * together, and each one's blocks, held until then, move on once it exists.
   */
  private createTemp(f: InFile): void {
    const temp = this.temps.beside(f.final)
    f.temp = temp
    this.creating++
    const { mode, createdFinal } = this.creationModeOf(f)
    f.creating = createExclusive(temp, mode).then(
      () => {
        // Space reserved in advance would fill the holes that the sender skips, or that
        // `sparse` leaves for zero blocks; a size known only at the end gives nothing to reserve.
        f.target = { path: temp, sizeBytes: f.sizeBytes, preallocate: !f.holes && !this.session.init.sparse && f.sizeBytes !== null, ...this.placement(f) }
        if (f.finishedByWriter) f.target.finish = createdFinal ? {} : this.attributesOf(f)
      },
      (err: EscpError) => {
        // Nothing of ours is there; a name that was there already is someone else's file.
        f.temp = Buffer.alloc(0)
        f.failed ??= err
        this.maybeFinish(f)
      },
    ).finally(() => {
      f.creating = null
      this.creating--
      for (const l of this.links) l.pump()
      this.poke()
    })
  }

  /**
   * A file of one block, with an engine that makes a small file in one call: the worker that
   * writes the block creates the temporary file with it, so nothing is created here and the
   * block does not wait. The name becomes the file's `temp` once written: a failed write leaves
   * nothing behind.
   */
  private createByWriter(f: InFile): void {
    const { mode, createdFinal } = this.creationModeOf(f)
    f.target = { path: this.temps.beside(f.final), sizeBytes: Number(f.spec.size), preallocate: false, finish: createdFinal ? {} : this.attributesOf(f), createMode: mode, ...this.placement(f) }
  }

  // In a bundle with its digest (1.4), the worker checks a file of one block and puts it in place itself.
  private placement(f: InFile): { placeAt?: Buffer } {
    return this.bundleDigests && f.finishedByWriter ? { placeAt: f.final } : {}
  }

  /**
   * Without -p a file whose mode lets its owner write is created with that mode, which then
   * needs no fchmod: the file shows nobody more while written than it will once complete.
   */
  private creationModeOf(f: InFile): { mode: number; createdFinal: boolean } {
    const mode = this.options.preserve ? 0 : plainMode(f)
    // The umask applies at creation: a kept mode it would change is set afterwards.
    const createdFinal = (mode & 0o200) !== 0 && (mode & UMASK) === 0
    return { mode: createdFinal ? mode : 0o600, createdFinal }
  }

  private async placeSymlink(f: InFile): Promise<void> {
    const temp = this.temps.beside(f.final)
    try {
      await fs.promises.symlink(Buffer.from(f.spec.linkTarget), temp)
      if (this.options.preserve) await fs.promises.lutimes(temp, nsToSeconds(f.spec.atimeNs), nsToSeconds(f.spec.mtimeNs)).catch(() => {})
      await fs.promises.rename(temp, f.final)
    } catch (err) {
      await fs.promises.unlink(temp).catch(() => {})
      throw ioError(err, 'symlink', f.final)
    }
  }

  private onLinkMessage(link: ReceiverLink, m: FromWorker): void {
    if (m.t === 'written' || m.t === 'discarded' || m.t === 'writeFailed') {
      const f = this.files.get(m.fileId)
      if (!f) {
        this.abort(escpError('ESCP_ERR_PROTOCOL', `a block for unknown entry ${m.fileId}`))
        return
      }
      if (m.done && f.dropped) {
        // An Error report drops a file its sender could not read: not one its bundle carried whole.
        this.abort(escpError('ESCP_ERR_PROTOCOL', `an error report for '${shownOf(f)}', which its bundle carried whole`))
        return
      }
      // Its bundle stands for its FileDone. None came, nor any other record: bundleOf, ready()
      // and the FileDone handler refuse those for a file a bundle claimed.
      if (m.done) f.done = { id: f.spec.id, size: f.spec.size, blocks: 1n, digest: m.done }
      f.processed++
      if (m.t === 'written' && m.placed) {
        // Checked against its bundle's digest, and under its final name already.
        f.placed = true
        this.bytes += m.length
        this.wireBytes += m.wireBytes
        this.progress()
      } else if (m.t === 'written') {
        if (!f.finishedByWriter) f.writers.add(link)
        if (f.target?.createMode !== undefined) {
          f.temp = f.target.path as Buffer
          // Created after its file was given up: the name is one this session drew, and goes.
          if (f.dropped) void fs.promises.unlink(f.temp).catch(() => {})
        }
        this.bytes += m.length
        this.wireBytes += m.wireBytes
        this.progress()
        // Blocks a sender skips count as zeros in the digest, so a block must be one of the
        // file's own, and come once, for the digest to describe what was written.
        const bs = this.options.blockSizeBytes
        const index = m.offset / bs
        if (!Number.isInteger(index) || !this.isBlockOf(f, m.offset, m.length)) {
          f.failed ??= escpError('ESCP_ERR_PROTOCOL', `a block of '${shownOf(f)}' at ${m.offset}+${m.length}, which is not one of its blocks of ${bs} bytes`)
        } else if (m.digest && !this.digestOf(f)?.add(index, m.digest)) {
          f.failed ??= escpError('ESCP_ERR_PROTOCOL', `a second block of '${shownOf(f)}' at offset ${m.offset}`)
        }
      } else if (m.t === 'writeFailed') {
        if (!f.finishedByWriter) f.writers.add(link)
        f.failed ??= deserializeError(m.error)
        // A worker's createFile that failed left nothing of its own (it removes what it made),
        // and a name it found taken is not this session's to remove.
        if (f.target?.createMode !== undefined) f.target.createMode = undefined
      }
      this.maybeFinish(f)
    }
    this.poke()
  }

  /** The file's digest being folded, made when first needed; null without a checksum. */
  private digestOf(f: InFile): OrderedDigest | null {
    if (!this.zeros) return null
    return (f.digest ??= new OrderedDigest(this.zeros, f.sizeBytes))
  }

  private progress(): void {
    this.options.onProgress?.({
      bytesDone: this.bytes,
      bytesTotal: this.bytesAnnounced,
      filesDone: this.entriesOk + this.failedCount,
      filesTotal: this.entries,
      enumerationDone: this.sessionEnded,
      elapsedMs: Date.now() - this.started,
    })
  }

  /**
   * Whether a block at `offset` of `length` bytes is one of the file's. Until the size of a file
   * whose size is known only at its end arrives, every block but one must be full and the short
   * one noted; sizeKnown then checks them all against the size.
   */
  private isBlockOf(f: InFile, offset: number, length: number): boolean {
    const bs = this.options.blockSizeBytes
    if (f.sizeBytes !== null) return length === Math.min(bs, f.sizeBytes - offset)
    f.furthestBytes = Math.max(f.furthestBytes, offset + length)
    if (length === bs) return true
    if (length === 0 || f.shortEndBytes !== null) return false
    f.shortEndBytes = offset + length
    return true
  }

  /**
   * The size of a file whose size is known only at its end, from its FileDone: the blocks written
   * so far must lie within it, a short one must end it, and the digest covers the blocks it makes.
   */
  private sizeKnown(f: InFile, size: bigint): void {
    this.bytesAnnounced += Number(size)
    if (size > BigInt(MAX_FILE_SIZE_BYTES)) {
      f.failed ??= escpError('ESCP_ERR_FILE_TOO_LARGE', shownOf(f), size)
      return
    }
    const sizeBytes = Number(size)
    f.sizeBytes = sizeBytes
    // A sink (an engine that discards) keeps receiving the file as one of unknown size, so that
    // every handle of it agrees; it learns the size when the file is finished.
    if (f.target && !this.options.engine.discards) f.target.sizeBytes = sizeBytes
    const shortFits = f.shortEndBytes === null || f.shortEndBytes === sizeBytes
    if (f.furthestBytes > sizeBytes || !shortFits || (f.digest && !f.digest.end(sizeBytes))) {
      f.failed ??= escpError('ESCP_ERR_PROTOCOL', `a block of '${shownOf(f)}' that is not one of the blocks of its final ${sizeBytes} bytes`)
    }
  }

  // A file is finished once the sender said so (FileDone or an error report) and every block
  // it sent has been written or dropped.
  private maybeFinish(f: InFile): void {
    if (f.finished || f.settled) return
    // A dropped file finishes at once: its later blocks are discarded on arrival, and closing
    // it in the workers waits for the writes already under way. One in a bundle with its digest
    // waits for the bundle's answer, which says whether the sender could read it at all.
    const expected = f.done ? Number(f.done.blocks) : undefined
    if (!f.dropped && (expected === undefined || f.processed < expected)) return
    if (f.dropped && f.inBundle && f.processed < f.claimed) return
    if (f.placed && !f.failed) {
      // Its bundle's worker checked it and put it in place: nothing is left to do.
      f.finished = Promise.resolve()
      this.verdict(f, null)
      return
    }
    f.finished = this.finishFile(f).catch((e: EscpError) => this.abort(e))
  }

  private async finishFile(f: InFile): Promise<void> {
    if (f.creating) await f.creating
    // A handle that failed to open (a full disk at fallocate) or to close fails its file, not
    // the session: the other files go on.
    const closed = await Promise.allSettled([...f.writers].map((l) => l.closeFile(f.spec.id)))
    const unclosed = closed.find((c): c is PromiseRejectedResult => c.status === 'rejected')
    f.failed ??= unclosed && (isEscpError(unclosed.reason) ? unclosed.reason : ioError(unclosed.reason, 'close', f.final))
    let error = f.failed
    const digest = this.digestOf(f)
    if (!error && digest && f.done) {
      const mine = Buffer.from(digest.digest())
      f.written = mine
      if (!mine.equals(Buffer.from(f.done.digest))) {
        error = escpError('ESCP_ERR_VERIFY', shownOf(f), `its ${this.options.checksum?.name} digest is ${mine.toString('hex')} here and ${Buffer.from(f.done.digest).toString('hex')} at the sender`)
      }
    }
    if (this.options.engine.discards) {
      // A sink learns here, after the digest was checked, that a file is complete and its size
      // (an empty file has no block to open it with before), or that it failed.
      error = (await this.finishInSink(f, f.dropped ? (f.failed ?? error) : error)) ?? error
    }
    if (!error && !this.options.engine.discards) {
      try {
        if (!f.finishedByWriter) {
          const h = await this.options.engine.openWrite(f.temp, { create: false })
          try {
            await h.truncate(f.sizeBytes as number)
          } catch (err) {
            await h.close()
            throw err
          }
          await h.finish(this.attributesOf(f))
        }
        await this.renameInto(f.temp, f.final)
      } catch (err) {
        error = isEscpError(err) ? err : ioError(err, 'rename', f.final)
      }
    }
    if (error && f.temp.byteLength > 0) await fs.promises.unlink(f.temp).catch(() => {})
    if (f.dropped) {
      this.failures.push({ path: shownOf(f), error: this.shown(f.failed as EscpError) })
      this.settle(f, false)
    } else {
      if (!error && f.holes) this.holeBytes += Number(f.spec.sparseBytes)
      this.verdict(f, error ?? null)
    }
  }

  // rename() replaces a file or a symlink at the final name (never following it); a directory
  // there is an error, as it is for scp. Through the engine where it renames (in batches).
  private async renameInto(temp: Buffer, final: Buffer): Promise<void> {
    const { engine } = this.options
    try {
      if (engine.rename) await engine.rename(temp, final)
      else await fs.promises.rename(temp, final)
    } catch (err) {
      throw isEscpError(err) ? err : ioError(err, 'rename', final)
    }
  }

  private async finishInSink(f: InFile, failed: EscpError | undefined): Promise<EscpError | undefined> {
    if (f.sinkTold) return undefined
    f.sinkTold = true
    try {
      const h = await this.options.engine.openWrite(Buffer.from(shownOf(f)), { sizeBytes: f.sizeBytes ?? 0 })
      if (failed) {
        await h.close()
        return undefined
      }
      try {
        await h.finish()
      } catch (err) {
        await h.close().catch(() => {})
        throw err
      }
    } catch (err) {
      return isEscpError(err) ? err : ioError(err, 'open', shownOf(f))
    }
    return undefined
  }

  private attributesOf(f: InFile) {
    const { spec } = f
    if (!this.options.preserve) return { mode: plainMode(f) }
    return {
      mode: spec.mode & 0o7777,
      atimeNs: spec.atimeNs,
      mtimeNs: spec.mtimeNs,
      ...(IS_ROOT ? { uid: spec.uid, gid: spec.gid } : {}),
    }
  }

  // Directory attributes go last: writing inside a directory changes its times.
  private async finishDirectories(): Promise<void> {
    for (const { path: dir, held, spec } of this.dirs.splice(0).reverse()) {
      // The directory itself: through the descriptor held for it (where its files went, had it
      // been moved), else one opened now without following a symlink put at its name.
      const set = async (at: string | Buffer) => {
        if (this.options.preserve) {
          if (IS_ROOT) await fs.promises.chown(at, spec.uid, spec.gid)
          await fs.promises.chmod(at, spec.mode & 0o7777)
          await fs.promises.utimes(at, nsToSeconds(spec.atimeNs), nsToSeconds(spec.mtimeNs))
        } else {
          await fs.promises.chmod(at, spec.mode & ~UMASK & 0o777)
        }
      }
      try {
        await (held ? set(held) : throughDirectory(dir, set))
      } catch (err) {
        // The directory's verdict went out when it was created: a late failure is reported apart.
        const e = ioError(err, 'chmod/utimes', dir)
        this.failedCount++
        this.failures.push({ path: displayPath(spec.path), error: this.shown(e) })
        this.queueMeta(() =>
          this.session.meta.sendMessage(
            RecordType.Error,
            encodeErrorReport({ path: spec.path, fatal: false, error: errorInfoOf(e) }),
          ),
        )
      }
    }
  }

  // An error as people read it: the paths it names as they are, not as the guard reaches them.
  private shown(err: EscpError): EscpError {
    return this.options.destination.guard.shownError(err)
  }

  private verdict(f: InFile, error: EscpError | null): void {
    if (error) this.failures.push({ path: shownOf(f), error: this.shown(error) })
    this.settle(f, error === null)
    this.verdicts.add({
      id: f.spec.id,
      ok: error === null,
      // Our own digest of what was written, so the sender compares for itself.
      digest: f.written ?? new Uint8Array(0),
      ...(error ? { error: errorInfoOf(error) } : {}),
    })
  }

  /**
   * A batch of verdicts as a record: in a session of 1.4, the entries answered ok as runs of
   * consecutive ids (without their digests, which the sender has), the others one by one.
   */
  private encodeVerdicts(batch: Verdict[]): Uint8Array {
    if (this.session.sharedMinor < MINOR_OK_RUNS) return encodeVerdicts(batch)
    return encodeVerdicts(
      batch.filter((v) => !v.ok),
      okRunsOf(batch.flatMap((v) => (v.ok ? [v.id] : []))),
    )
  }

  private settle(f: InFile, ok: boolean): void {
    f.settled = true
    // Memory for what is under way only. A file the sender dropped stays: blocks of it may still
    // come, to be discarded.
    if (!f.dropped) this.files.delete(f.spec.id)
    this.unsettled--
    if (ok) this.entriesOk++
    else this.failedCount++
    this.poke()
  }

  /**
   * Removes the temporary files of everything unfinished, once those being created exist; a sink
   * is told that each unfinished file failed (the shm engine aborts its stream).
   */
  private async cleanup(): Promise<void> {
    await Promise.all(
      [...this.files.values()]
        .filter((f) => !f.settled)
        .map(async (f) => {
          if (this.options.engine.discards) {
            // A file being finished gets there first (its closes in the failed links are refused).
            if (f.finished) await f.finished
            if (f.spec.type === 'file') await this.finishInSink(f, this.fatal ?? escpError('ESCP_ERR_TRANSFER', 'the session failed'))
            return
          }
          if (f.creating) await f.creating
          // One being finished gets there first: its names lead through the guard's descriptors,
          // which close once this is done.
          if (f.finished) await f.finished
          // A file its worker creates may exist before its 'written' arrives (or without one, the
          // worker stopped); the name is one this session drew at random.
          const temp = f.temp.byteLength === 0 && f.target?.createMode !== undefined ? (f.target.path as Buffer) : f.temp
          if (temp.byteLength > 0) await fs.promises.unlink(temp).catch(() => {})
        }),
    )
  }
}

/** A file's mode without -p: the one it writes over keeps its own, a new one the source's less the umask. */
function plainMode(f: InFile): number {
  return f.kept?.mode ?? f.spec.mode & ~UMASK & 0o777
}

/** The permissions of a regular file at `final`, if one is there. */
async function existingFile(final: Buffer): Promise<InFile['kept']> {
  try {
    const st = await fs.promises.lstat(final)
    return st.isFile() ? { mode: st.mode & 0o777 } : undefined
  } catch {
    return undefined
  }
}

function tooManyBlocks(f: InFile): EscpError {
  return escpError('ESCP_ERR_PROTOCOL', `more blocks for '${shownOf(f)}' than the ${f.done?.blocks} its FileDone counts`)
}

/** Names `.escp-<12 hex digits>.tmp` beside a final name, from random bytes drawn 256 names at a time. */
class TempNames {
  private random = Buffer.alloc(0)
  private used = 0

  beside(final: Buffer): Buffer {
    if (this.used === this.random.byteLength) {
      this.random = crypto.randomBytes(6 * 256)
      this.used = 0
    }
    const hex = this.random.toString('hex', this.used, (this.used += 6))
    // Every final name is a directory, '/', and a name (PathGuard.place).
    return Buffer.concat([final.subarray(0, final.lastIndexOf(SLASH) + 1), Buffer.from(`.escp-${hex}.tmp`)])
  }
}

/**
 * Creates `file` empty with `mode` (less the umask), failing if anything (a symlink included) has
 * the name; a failure leaves nothing behind. Callbacks rather than fs.promises: one FileHandle
 * less per file.
 */
function createExclusive(file: Buffer, mode: number): Promise<void> {
  const flags = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW
  return new Promise((resolve, reject) => {
    fs.open(file, flags, mode, (err, fd) => {
      if (err) return reject(ioError(err, 'open', file))
      fs.close(fd, (e) => (e ? fs.unlink(file, () => reject(ioError(e, 'close', file))) : resolve()))
    })
  })
}


/**
 * Seconds, as Node's utimes takes them: a double, which keeps a time of this century to a
 * fraction of a microsecond (a Date would keep milliseconds). Files get theirs to the
 * nanosecond from the engines (futimens).
 */
function nsToSeconds(ns: bigint): number {
  return Number(ns / 1000n) / 1e6
}

/** An entry's name as shown to people: made for errors and failures only, not per file. */
function shownOf(f: InFile): string {
  return displayPath(f.spec.path)
}
