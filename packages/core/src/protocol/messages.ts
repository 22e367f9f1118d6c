// Plain-object views of the flatbuffers messages (schema/escp.fbs), with encoders and
// defensive decoders. The flatbuffers runtime has no verifier: a hostile buffer can hold any
// offset or length. Out-of-range reads yield zeros there, and strings are clamped to the
// buffer, so the one danger is a forged vector length driving a long loop: every vector length
// is checked against the buffer size before it is walked. Byte vectors (paths, digests, keys)
// are written with Builder.createByteVector, one copy, where flatc's create…Vector adds them a
// byte at a time; the bytes on the wire are the same.
import * as flatbuffers from 'flatbuffers'
import { EscpError, escpError, isEscpError, remoteError } from '../errors'
import * as fb from './generated/escp_generated'

export interface Capabilities {
  ciphers: string[]
  compressors: string[]
  checksums: string[]
  engines: string[]
}

export type DataRole = 'receiver' | 'sender'

export interface SessionInit {
  protocolMajor: number
  protocolMinor: number
  software: string
  sessionId: Uint8Array
  secret: Uint8Array
  serverRole: DataRole
  ciphers: string[]
  compressor: string
  compressionLevel: number
  checksum: string
  serverEngine: string
  blockSizeBytes: number
  streams: number
  bindAddress: string
  port: number
  portRange: number
  preserve: boolean
  sparse: boolean
  direct: boolean
  recursive: boolean
  paths: string[]
  capabilities: Capabilities
  sourceCount: number
  queueDepth: number
  /** Pacing of each data stream at the sender, bytes per second; 0 for none. */
  rateLimit: number
}

export interface SessionAccept {
  protocolMajor: number
  protocolMinor: number
  software: string
  address: string
  port: number
  cipher: string
  capabilities: Capabilities
}

export interface Fatal {
  code: string
  message: string
}

export interface SessionDone {
  ok: boolean
  filesOk: bigint
  filesFailed: bigint
  bytes: bigint
}

export type ControlMessage =
  | { kind: 'init'; init: SessionInit }
  | { kind: 'accept'; accept: SessionAccept }
  | { kind: 'fatal'; fatal: Fatal }
  | { kind: 'done'; done: SessionDone }

export type FileType = 'file' | 'directory' | 'symlink'

export interface FileSpec {
  id: bigint
  /** Relative path, '/'-separated, raw bytes. */
  path: Uint8Array
  type: FileType
  size: bigint
  sizeAtEnd: boolean
  mode: number
  uid: number
  gid: number
  atimeNs: bigint
  mtimeNs: bigint
  linkTarget: Uint8Array
  sparseBytes: bigint
}

export interface FileBatch {
  files: FileSpec[]
  last: boolean
}

export interface FileDone {
  id: bigint
  size: bigint
  blocks: bigint
  digest: Uint8Array
}

export interface ErrorInfo {
  code: string
  errnoName: string
  syscall: string
  message: string
}

/** The wire form of an error (ErrorInfo), keeping its errno name and syscall. */
export function errorInfoOf(e: EscpError): ErrorInfo {
  return { code: e.code, errnoName: e.errno ?? '', syscall: e.syscall ?? '', message: e.message }
}

/** An error the peer sent: its code when it is one of ours (else ESCP_ERR_REMOTE), errno and syscall kept. */
export function errorFromInfo(info: ErrorInfo): EscpError {
  const e = remoteError(info.code, info.message)
  return new EscpError(e.code, e.message.slice(e.code.length + 2), { errno: info.errnoName || undefined, syscall: info.syscall || undefined })
}

export interface Verdict {
  id: bigint
  ok: boolean
  digest: Uint8Array
  error?: ErrorInfo
}

export interface ErrorReport {
  fileId?: bigint
  path: Uint8Array
  fatal: boolean
  error: ErrorInfo
}

export interface BlockDigests {
  fileId: bigint
  blockSizeBytes: number
  firstBlock: bigint
  digests: Uint8Array
}

export interface SessionEnd {
  files: bigint
  bytes: bigint
}

// ------------------------------------------------------------------ encoding helpers

function strings(b: flatbuffers.Builder, list: readonly string[]): number[] {
  return list.map((s) => b.createString(s))
}

function encodeCapabilities(b: flatbuffers.Builder, c: Capabilities): number {
  const ciphers = fb.Capabilities.createCiphersVector(b, strings(b, c.ciphers))
  const compressors = fb.Capabilities.createCompressorsVector(b, strings(b, c.compressors))
  const checksums = fb.Capabilities.createChecksumsVector(b, strings(b, c.checksums))
  const engines = fb.Capabilities.createEnginesVector(b, strings(b, c.engines))
  return fb.Capabilities.createCapabilities(b, ciphers, compressors, checksums, engines)
}

function encodeErrorInfo(b: flatbuffers.Builder, e: ErrorInfo): number {
  const code = b.createString(e.code)
  const errno = b.createString(e.errnoName)
  const syscall = b.createString(e.syscall)
  const message = b.createString(e.message)
  return fb.ErrorInfo.createErrorInfo(b, code, errno, syscall, message)
}

function finish(b: flatbuffers.Builder, root: number): Uint8Array {
  b.finish(root)
  return b.asUint8Array()
}

// ------------------------------------------------------------------ decoding helpers

/** Wraps a decoder so anything odd in a hostile buffer becomes ESCP_ERR_PROTOCOL. */
function decoding<T>(what: string, buf: Uint8Array, fn: (bb: flatbuffers.ByteBuffer) => T): T {
  if (buf.byteLength < 8) throw escpError('ESCP_ERR_PROTOCOL', `a ${what} of ${buf.byteLength} bytes`)
  try {
    return fn(new flatbuffers.ByteBuffer(buf))
  } catch (err) {
    if (isEscpError(err)) throw err
    throw escpError('ESCP_ERR_PROTOCOL', `a malformed ${what}: ${(err as Error).message}`)
  }
}

function vectorLength(bb: flatbuffers.ByteBuffer, n: number, elementBytes: number, what: string): number {
  if (!Number.isInteger(n) || n < 0 || n * elementBytes > bb.capacity()) {
    throw escpError('ESCP_ERR_PROTOCOL', `${what}: a vector of ${n} elements does not fit in ${bb.capacity()} bytes`)
  }
  return n
}

function stringList(bb: flatbuffers.ByteBuffer, n: number, get: (i: number) => string | null, what: string): string[] {
  const len = vectorLength(bb, n, 4, what)
  const out: string[] = []
  for (let i = 0; i < len; i++) out.push(get(i) ?? '')
  return out
}

function bytes(bb: flatbuffers.ByteBuffer, n: number, get: () => Uint8Array | null, what: string): Uint8Array {
  vectorLength(bb, n, 1, what)
  const a = get()
  return a ? new Uint8Array(a) : new Uint8Array(0)
}

function decodeCapabilities(bb: flatbuffers.ByteBuffer, c: fb.Capabilities | null): Capabilities {
  if (!c) return { ciphers: [], compressors: [], checksums: [], engines: [] }
  return {
    ciphers: stringList(bb, c.ciphersLength(), (i) => c.ciphers(i), 'capabilities.ciphers'),
    compressors: stringList(bb, c.compressorsLength(), (i) => c.compressors(i), 'capabilities.compressors'),
    checksums: stringList(bb, c.checksumsLength(), (i) => c.checksums(i), 'capabilities.checksums'),
    engines: stringList(bb, c.enginesLength(), (i) => c.engines(i), 'capabilities.engines'),
  }
}

function decodeErrorInfo(e: fb.ErrorInfo | null): ErrorInfo | undefined {
  if (!e) return undefined
  return { code: e.code() ?? '', errnoName: e.errnoName() ?? '', syscall: e.syscall() ?? '', message: e.message() ?? '' }
}

// ------------------------------------------------------------------ control messages

export function encodeControl(msg: ControlMessage): Uint8Array {
  const b = new flatbuffers.Builder(256)
  let type: fb.ControlBody
  let body: number
  switch (msg.kind) {
    case 'init': {
      const m = msg.init
      const software = b.createString(m.software)
      const sessionId = b.createByteVector(m.sessionId)
      const secret = b.createByteVector(m.secret)
      const ciphers = fb.SessionInit.createCiphersVector(b, strings(b, m.ciphers))
      const compressor = b.createString(m.compressor)
      const checksum = b.createString(m.checksum)
      const engine = b.createString(m.serverEngine)
      const bind = b.createString(m.bindAddress)
      const paths = fb.SessionInit.createPathsVector(b, strings(b, m.paths))
      const caps = encodeCapabilities(b, m.capabilities)
      fb.SessionInit.startSessionInit(b)
      fb.SessionInit.addProtocolMajor(b, m.protocolMajor)
      fb.SessionInit.addProtocolMinor(b, m.protocolMinor)
      fb.SessionInit.addSoftware(b, software)
      fb.SessionInit.addSessionId(b, sessionId)
      fb.SessionInit.addSecret(b, secret)
      fb.SessionInit.addServerRole(b, m.serverRole === 'sender' ? fb.DataRole.Sender : fb.DataRole.Receiver)
      fb.SessionInit.addCiphers(b, ciphers)
      fb.SessionInit.addCompressor(b, compressor)
      fb.SessionInit.addCompressionLevel(b, m.compressionLevel)
      fb.SessionInit.addChecksum(b, checksum)
      fb.SessionInit.addServerEngine(b, engine)
      fb.SessionInit.addBlockSize(b, m.blockSizeBytes)
      fb.SessionInit.addStreams(b, m.streams)
      fb.SessionInit.addBindAddress(b, bind)
      fb.SessionInit.addPort(b, m.port)
      fb.SessionInit.addPortRange(b, m.portRange)
      fb.SessionInit.addPreserve(b, m.preserve)
      fb.SessionInit.addSparse(b, m.sparse)
      fb.SessionInit.addDirect(b, m.direct)
      fb.SessionInit.addRecursive(b, m.recursive)
      fb.SessionInit.addPaths(b, paths)
      fb.SessionInit.addCapabilities(b, caps)
      fb.SessionInit.addSourceCount(b, m.sourceCount)
      fb.SessionInit.addQueueDepth(b, m.queueDepth)
      fb.SessionInit.addRateLimit(b, BigInt(Math.round(m.rateLimit)))
      body = fb.SessionInit.endSessionInit(b)
      type = fb.ControlBody.SessionInit
      break
    }
    case 'accept': {
      const m = msg.accept
      const software = b.createString(m.software)
      const address = b.createString(m.address)
      const cipher = b.createString(m.cipher)
      const caps = encodeCapabilities(b, m.capabilities)
      fb.SessionAccept.startSessionAccept(b)
      fb.SessionAccept.addProtocolMajor(b, m.protocolMajor)
      fb.SessionAccept.addProtocolMinor(b, m.protocolMinor)
      fb.SessionAccept.addSoftware(b, software)
      fb.SessionAccept.addAddress(b, address)
      fb.SessionAccept.addPort(b, m.port)
      fb.SessionAccept.addCipher(b, cipher)
      fb.SessionAccept.addCapabilities(b, caps)
      body = fb.SessionAccept.endSessionAccept(b)
      type = fb.ControlBody.SessionAccept
      break
    }
    case 'fatal': {
      const code = b.createString(msg.fatal.code)
      const message = b.createString(msg.fatal.message)
      body = fb.Fatal.createFatal(b, code, message)
      type = fb.ControlBody.Fatal
      break
    }
    case 'done': {
      const d = msg.done
      body = fb.SessionDone.createSessionDone(b, d.ok, d.filesOk, d.filesFailed, d.bytes)
      type = fb.ControlBody.SessionDone
      break
    }
  }
  return finish(b, fb.ControlMessage.createControlMessage(b, type, body))
}

export function decodeControl(buf: Uint8Array): ControlMessage {
  return decoding('control message', buf, (bb) => {
    const root = fb.ControlMessage.getRootAsControlMessage(bb)
    switch (root.bodyType()) {
      case fb.ControlBody.SessionInit: {
        const m = root.body(new fb.SessionInit()) as fb.SessionInit
        const role = m.serverRole()
        if (role !== fb.DataRole.Sender && role !== fb.DataRole.Receiver) throw escpError('ESCP_ERR_PROTOCOL', `unknown server role ${role}`)
        return {
          kind: 'init',
          init: {
            protocolMajor: m.protocolMajor(),
            protocolMinor: m.protocolMinor(),
            software: m.software() ?? '',
            sessionId: bytes(bb, m.sessionIdLength(), () => m.sessionIdArray(), 'session id'),
            secret: bytes(bb, m.secretLength(), () => m.secretArray(), 'secret'),
            serverRole: role === fb.DataRole.Sender ? 'sender' : 'receiver',
            ciphers: stringList(bb, m.ciphersLength(), (i) => m.ciphers(i), 'ciphers'),
            compressor: m.compressor() ?? 'none',
            compressionLevel: m.compressionLevel(),
            checksum: m.checksum() ?? 'none',
            serverEngine: m.serverEngine() ?? '',
            blockSizeBytes: m.blockSize(),
            streams: m.streams(),
            bindAddress: m.bindAddress() ?? '',
            port: m.port(),
            portRange: m.portRange(),
            preserve: m.preserve(),
            sparse: m.sparse(),
            direct: m.direct(),
            recursive: m.recursive(),
            paths: stringList(bb, m.pathsLength(), (i) => m.paths(i), 'paths'),
            capabilities: decodeCapabilities(bb, m.capabilities()),
            sourceCount: m.sourceCount(),
            queueDepth: m.queueDepth(),
            rateLimit: Number(m.rateLimit()),
          },
        }
      }
      case fb.ControlBody.SessionAccept: {
        const m = root.body(new fb.SessionAccept()) as fb.SessionAccept
        return {
          kind: 'accept',
          accept: {
            protocolMajor: m.protocolMajor(),
            protocolMinor: m.protocolMinor(),
            software: m.software() ?? '',
            address: m.address() ?? '',
            port: m.port(),
            cipher: m.cipher() ?? '',
            capabilities: decodeCapabilities(bb, m.capabilities()),
          },
        }
      }
      case fb.ControlBody.Fatal: {
        const m = root.body(new fb.Fatal()) as fb.Fatal
        return { kind: 'fatal', fatal: { code: m.code() ?? '', message: m.message() ?? '' } }
      }
      case fb.ControlBody.SessionDone: {
        const m = root.body(new fb.SessionDone()) as fb.SessionDone
        return { kind: 'done', done: { ok: m.ok(), filesOk: m.filesOk(), filesFailed: m.filesFailed(), bytes: m.bytes() } }
      }
      default:
        throw escpError('ESCP_ERR_PROTOCOL', `unknown control message type ${root.bodyType()}`)
    }
  })
}

// ------------------------------------------------------------------ meta messages

const FILE_TYPES: Record<FileType, fb.FileType> = { file: fb.FileType.File, directory: fb.FileType.Directory, symlink: fb.FileType.Symlink }

export function encodeFileBatch(batch: FileBatch): Uint8Array {
  const b = new flatbuffers.Builder(1024)
  const specs = batch.files.map((f) => {
    const p = b.createByteVector(f.path)
    const link = b.createByteVector(f.linkTarget)
    return fb.FileSpec.createFileSpec(b, f.id, p, FILE_TYPES[f.type], f.size, f.sizeAtEnd, f.mode, f.uid, f.gid, f.atimeNs, f.mtimeNs, link, f.sparseBytes)
  })
  const files = fb.FileBatch.createFilesVector(b, specs)
  return finish(b, fb.FileBatch.createFileBatch(b, files, batch.last))
}

export function decodeFileBatch(buf: Uint8Array): FileBatch {
  return decoding('file batch', buf, (bb) => {
    const root = fb.FileBatch.getRootAsFileBatch(bb)
    const n = vectorLength(bb, root.filesLength(), 4, 'files')
    const files: FileSpec[] = []
    for (let i = 0; i < n; i++) {
      const f = root.files(i)
      if (!f) throw escpError('ESCP_ERR_PROTOCOL', `file batch entry ${i} is missing`)
      const t = f.type()
      const type = t === fb.FileType.File ? 'file' : t === fb.FileType.Directory ? 'directory' : t === fb.FileType.Symlink ? 'symlink' : undefined
      if (!type) throw escpError('ESCP_ERR_PROTOCOL', `unknown file type ${t}`)
      files.push({
        id: f.id(),
        path: bytes(bb, f.pathLength(), () => f.pathArray(), 'path'),
        type,
        size: f.size(),
        sizeAtEnd: f.sizeAtEnd(),
        mode: f.mode(),
        uid: f.uid(),
        gid: f.gid(),
        atimeNs: f.atimeNs(),
        mtimeNs: f.mtimeNs(),
        linkTarget: bytes(bb, f.linkTargetLength(), () => f.linkTargetArray(), 'link target'),
        sparseBytes: f.sparseBytes(),
      })
    }
    return { files, last: root.last() }
  })
}

export function encodeFileDone(list: readonly FileDone[]): Uint8Array {
  const b = new flatbuffers.Builder(256)
  const items = list.map((f) => fb.FileDone.createFileDone(b, f.id, f.size, f.blocks, b.createByteVector(f.digest)))
  return finish(b, fb.FileDoneBatch.createFileDoneBatch(b, fb.FileDoneBatch.createFilesVector(b, items)))
}

export function decodeFileDone(buf: Uint8Array): FileDone[] {
  return decoding('file-done batch', buf, (bb) => {
    const root = fb.FileDoneBatch.getRootAsFileDoneBatch(bb)
    const n = vectorLength(bb, root.filesLength(), 4, 'files')
    const out: FileDone[] = []
    for (let i = 0; i < n; i++) {
      const f = root.files(i)
      if (!f) throw escpError('ESCP_ERR_PROTOCOL', `file-done entry ${i} is missing`)
      out.push({ id: f.id(), size: f.size(), blocks: f.blocks(), digest: bytes(bb, f.digestLength(), () => f.digestArray(), 'digest') })
    }
    return out
  })
}

/** Entries `first` to `first + count - 1`, all answered ok, without their digests (1.4). */
export interface OkRun {
  first: bigint
  count: bigint
}

/** A Verdicts record: verdicts one by one, and (1.4) runs of entries answered ok. */
export interface VerdictBatch {
  verdicts: Verdict[]
  okRuns: OkRun[]
}

/** Verdicts one by one and, in a session of 1.4 or later, runs of entries answered ok. */
export function encodeVerdicts(list: readonly Verdict[], okRuns: readonly OkRun[] = []): Uint8Array {
  const b = new flatbuffers.Builder(256)
  const items = list.map((v) => {
    const digest = b.createByteVector(v.digest)
    const error = v.error ? encodeErrorInfo(b, v.error) : 0
    fb.Verdict.startVerdict(b)
    fb.Verdict.addId(b, v.id)
    fb.Verdict.addOk(b, v.ok)
    fb.Verdict.addDigest(b, digest)
    if (error) fb.Verdict.addError(b, error)
    return fb.Verdict.endVerdict(b)
  })
  const verdicts = fb.VerdictBatch.createVerdictsVector(b, items)
  const runs = okRuns.length > 0 ? fb.VerdictBatch.createOkRunsVector(b, okRuns.flatMap((r) => [r.first, r.count])) : 0
  return finish(b, fb.VerdictBatch.createVerdictBatch(b, verdicts, runs))
}

export function decodeVerdictBatch(buf: Uint8Array): VerdictBatch {
  return decoding('verdict batch', buf, (bb) => {
    const root = fb.VerdictBatch.getRootAsVerdictBatch(bb)
    const n = vectorLength(bb, root.verdictsLength(), 4, 'verdicts')
    const verdicts: Verdict[] = []
    for (let i = 0; i < n; i++) {
      const v = root.verdicts(i)
      if (!v) throw escpError('ESCP_ERR_PROTOCOL', `verdict ${i} is missing`)
      const error = decodeErrorInfo(v.error())
      verdicts.push({ id: v.id(), ok: v.ok(), digest: bytes(bb, v.digestLength(), () => v.digestArray(), 'digest'), ...(error ? { error } : {}) })
    }
    const values = vectorLength(bb, root.okRunsLength(), 8, 'ok runs')
    if (values % 2 !== 0) throw escpError('ESCP_ERR_PROTOCOL', `ok runs: ${values} numbers, where each run is two`)
    const okRuns: OkRun[] = []
    for (let i = 0; i < values; i += 2) {
      const run = { first: root.okRuns(i) as bigint, count: root.okRuns(i + 1) as bigint }
      if (run.count < 1n) throw escpError('ESCP_ERR_PROTOCOL', `an ok run of ${run.count} entries from entry ${run.first}`)
      okRuns.push(run)
    }
    return { verdicts, okRuns }
  })
}

/** Entries a batch's ok runs may name at the most, for decodeVerdicts to list them one by one. */
const MAX_LISTED_RUN_ENTRIES = 1 << 20

/** Every verdict of a batch one by one: those of its ok runs as ok, with empty digests. */
export function decodeVerdicts(buf: Uint8Array): Verdict[] {
  const { verdicts, okRuns } = decodeVerdictBatch(buf)
  if (okRuns.reduce((n, r) => n + r.count, 0n) > BigInt(MAX_LISTED_RUN_ENTRIES)) throw escpError('ESCP_ERR_PROTOCOL', `ok runs of more than ${MAX_LISTED_RUN_ENTRIES} entries in one batch`)
  for (const r of okRuns) for (let id = r.first; id < r.first + r.count; id++) verdicts.push({ id, ok: true, digest: new Uint8Array(0) })
  return verdicts
}

/**
 * Runs of consecutive entries from ids in the order given: each id that follows the one before
 * it extends its run. The ids of answers gathered together come mostly in order.
 */
export function okRunsOf(ids: readonly bigint[]): OkRun[] {
  const runs: OkRun[] = []
  let run: OkRun | undefined
  for (const id of ids) {
    if (run && id === run.first + run.count) run.count++
    else runs.push((run = { first: id, count: 1n }))
  }
  return runs
}

export function encodeErrorReport(r: ErrorReport): Uint8Array {
  const b = new flatbuffers.Builder(256)
  const p = b.createByteVector(r.path)
  const e = encodeErrorInfo(b, r.error)
  fb.ErrorReport.startErrorReport(b)
  fb.ErrorReport.addHasFile(b, r.fileId !== undefined)
  fb.ErrorReport.addFileId(b, r.fileId ?? 0n)
  fb.ErrorReport.addPath(b, p)
  fb.ErrorReport.addFatal(b, r.fatal)
  fb.ErrorReport.addError(b, e)
  return finish(b, fb.ErrorReport.endErrorReport(b))
}

export function decodeErrorReport(buf: Uint8Array): ErrorReport {
  return decoding('error report', buf, (bb) => {
    const r = fb.ErrorReport.getRootAsErrorReport(bb)
    const error = decodeErrorInfo(r.error()) ?? { code: 'ESCP_ERR_PROTOCOL', errnoName: '', syscall: '', message: 'an error report without an error' }
    return { ...(r.hasFile() ? { fileId: r.fileId() } : {}), path: bytes(bb, r.pathLength(), () => r.pathArray(), 'path'), fatal: r.fatal(), error }
  })
}

export function encodeBlockDigests(d: BlockDigests): Uint8Array {
  const b = new flatbuffers.Builder(256)
  const digests = fb.BlockDigests.createDigestsVector(b, d.digests)
  return finish(b, fb.BlockDigests.createBlockDigests(b, d.fileId, d.blockSizeBytes, d.firstBlock, digests))
}

export function decodeBlockDigests(buf: Uint8Array): BlockDigests {
  return decoding('block digests', buf, (bb) => {
    const r = fb.BlockDigests.getRootAsBlockDigests(bb)
    return { fileId: r.fileId(), blockSizeBytes: r.blockSize(), firstBlock: r.firstBlock(), digests: bytes(bb, r.digestsLength(), () => r.digestsArray(), 'digests') }
  })
}

export function encodeSessionEnd(e: SessionEnd): Uint8Array {
  const b = new flatbuffers.Builder(64)
  return finish(b, fb.SessionEnd.createSessionEnd(b, e.files, e.bytes))
}

export function decodeSessionEnd(buf: Uint8Array): SessionEnd {
  return decoding('session end', buf, (bb) => {
    const r = fb.SessionEnd.getRootAsSessionEnd(bb)
    return { files: r.files(), bytes: r.bytes() }
  })
}
