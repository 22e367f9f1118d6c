// The benchmarks' data, generated once and reused: large files of random bytes, a tree of
// many small files of random bytes with sizes that are the same on every machine, a
// compressible log-like text file, and a sparse file (extents of random bytes between holes).
// Random content comes from an AES-128-CTR keystream (fast, incompressible, reproducible); the
// log from a seeded generator.
// A dataset is written under a temporary name and renamed when complete, so one that exists
// under its real name is whole; reuse still checks every size.
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'

const KEY = Buffer.from('escp bench data!', 'latin1')
const CHUNK_BYTES = 16 * 2 ** 20
const SIZE_SEED = 0x65c9

export interface BigFileSpec {
  name: string
  bytes: number
}

export interface SmallTreeSpec {
  name: string
  files: number
  minBytes: number
  maxBytes: number
  /** Files per subdirectory: the tree is dirs of this many files each. */
  filesPerDir: number
}

export interface Dataset {
  path: string
  files: number
  bytes: number
  /** Whether this run generated it (else it was found complete and reused). */
  generated: boolean
}

/** The sizes of a small-files tree: the same list on every machine. */
export function smallFileSizes(spec: SmallTreeSpec): number[] {
  const next = seededRandom(SIZE_SEED)
  return Array.from({ length: spec.files }, () => spec.minBytes + Math.floor(next() * (spec.maxBytes - spec.minBytes + 1)))
}

/** mulberry32: a tiny seeded generator of numbers in [0, 1); Math.random cannot be seeded. */
function seededRandom(seed: number): () => number {
  let state = seed
  return () => {
    state = (state + 0x6d2b79f5) | 0
    let t = Math.imul(state ^ (state >>> 15), 1 | state)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32
  }
}

function smallFilePath(spec: SmallTreeSpec, i: number): string {
  return path.join(`d${String(Math.floor(i / spec.filesPerDir)).padStart(3, '0')}`, `f${String(i).padStart(5, '0')}.bin`)
}

function keystream(iv: number): crypto.Cipher {
  const ivBytes = Buffer.alloc(16)
  ivBytes.writeUInt32BE(iv, 0)
  return crypto.createCipheriv('aes-128-ctr', KEY, ivBytes)
}

/**
 * A one-file dataset of exactly `spec.bytes` bytes: reused when `dir` holds it at its full size,
 * else written by `fill` under a temporary name and renamed, so an interrupted run never leaves
 * a short file that a later run would take for complete.
 */
function ensureFile(dir: string, spec: BigFileSpec, fill: (fd: number) => void): Dataset {
  const file = path.join(dir, spec.name)
  const done = { path: file, files: 1, bytes: spec.bytes }
  if (fs.statSync(file, { throwIfNoEntry: false })?.size === spec.bytes) return { ...done, generated: false }
  fs.rmSync(file, { force: true })
  const tmp = `${file}.tmp`
  const fd = fs.openSync(tmp, 'w')
  try {
    fill(fd)
  } finally {
    fs.closeSync(fd)
  }
  fs.renameSync(tmp, file)
  return { ...done, generated: true }
}

/** The large file, reused when `dir` holds it at its full size. */
export function ensureBigFile(dir: string, spec: BigFileSpec): Dataset {
  return ensureFile(dir, spec, (fd) => {
    const zeros = Buffer.alloc(CHUNK_BYTES)
    const stream = keystream(1)
    for (let written = 0; written < spec.bytes; ) {
      const n = Math.min(CHUNK_BYTES, spec.bytes - written)
      const chunk = stream.update(n === CHUNK_BYTES ? zeros : zeros.subarray(0, n))
      fs.writeSync(fd, chunk)
      written += n
    }
  })
}

const LOG_SEED = 0x1095
const LOG_LEVELS = ['INFO', 'INFO', 'INFO', 'INFO', 'INFO', 'INFO', 'DEBUG', 'DEBUG', 'WARN', 'ERROR']
const LOG_USERS = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'heidi']
const LOG_ROUTES = ['GET /api/v1/objects/', 'PUT /api/v1/objects/', 'GET /api/v1/buckets/', 'POST /api/v1/jobs/', 'GET /healthz?probe=', 'DELETE /api/v1/objects/']
const LOG_STATUS = [200, 200, 200, 200, 200, 201, 204, 304, 404, 500]

/**
 * A text file like a service's access log, of exactly `spec.bytes` bytes: timestamped lines
 * with a level, a worker, a random request id, a route with a number, a status, sizes and a
 * duration. Reproducible (seeded), and compressible about as much as real logs are.
 */
export function ensureLogFile(dir: string, spec: BigFileSpec): Dataset {
  return ensureFile(dir, spec, (fd) => {
    const next = seededRandom(LOG_SEED)
    const pick = <T>(xs: readonly T[]) => xs[Math.floor(next() * xs.length)]
    const hex = (digits: number) => Math.floor(next() * 16 ** digits).toString(16).padStart(digits, '0')
    let ms = Date.UTC(2026, 0, 1)
    for (let written = 0; written < spec.bytes; ) {
      const lines: string[] = []
      for (let n = 0; n < 20_000; n++) {
        ms += Math.floor(next() * 40)
        const level = pick(LOG_LEVELS)
        lines.push(
          `${new Date(ms).toISOString()} ${level.padEnd(5)} [worker-${Math.floor(next() * 16)}] req=${hex(8)}${hex(8)} ${pick(LOG_ROUTES)}${Math.floor(next() * 100_000)} ` +
            `status=${pick(LOG_STATUS)} bytes=${Math.floor(next() * 65536)} dur_ms=${(next() * 250).toFixed(1)} user=${pick(LOG_USERS)}\n`,
        )
      }
      const chunk = Buffer.from(lines.join(''), 'latin1')
      const n = Math.min(chunk.length, spec.bytes - written)
      fs.writeSync(fd, chunk, 0, n)
      written += n
    }
  })
}

export interface SparseFileSpec extends BigFileSpec {
  /** Bytes of each data extent; the file holds as many as make up `dataFraction` of it, spread evenly. */
  extentBytes: number
  dataFraction: number
}

/** Where a sparse file's data extents start: evenly spread, at least one, none past the end. */
function sparseExtentOffsets(spec: SparseFileSpec): number[] {
  const slots = Math.floor(spec.bytes / spec.extentBytes)
  const count = Math.min(slots, Math.max(1, Math.round((spec.bytes * spec.dataFraction) / spec.extentBytes)))
  return Array.from({ length: count }, (_, i) => Math.floor((i * slots) / count) * spec.extentBytes)
}

/**
 * A file of `spec.bytes` bytes that is mostly holes: truncated to its size, then data extents
 * of random bytes written at offsets spread evenly through it, so it occupies about
 * `dataFraction` of its size on disk. Reused only while it is still that sparse: a copy that
 * filled its holes in would measure something else.
 */
export function ensureSparseFile(dir: string, spec: SparseFileSpec): Dataset {
  const offsets = sparseExtentOffsets(spec)
  const dataBytes = offsets.length * spec.extentBytes
  const file = path.join(dir, spec.name)
  const st = fs.statSync(file, { throwIfNoEntry: false })
  // Twice the data leaves room for the file system's own rounding, far below a filled-in file.
  if (st && st.size === spec.bytes && st.blocks * 512 > 2 * dataBytes + 2 ** 20) fs.rmSync(file)
  return ensureFile(dir, spec, (fd) => {
    fs.ftruncateSync(fd, spec.bytes)
    const stream = keystream(3)
    const zeros = Buffer.alloc(spec.extentBytes)
    for (const offset of offsets) fs.writeSync(fd, stream.update(zeros), 0, spec.extentBytes, offset)
  })
}

/** Space a file occupies on disk: st_blocks × 512, below its size when it has holes. */
export function allocatedBytes(file: string): number {
  return fs.statSync(file).blocks * 512
}

/** The small-files tree, reused when `dir` holds it with exactly the expected files and sizes. */
export function ensureSmallTree(dir: string, spec: SmallTreeSpec): Dataset {
  const root = path.join(dir, spec.name)
  const sizes = smallFileSizes(spec)
  const done = { path: root, files: spec.files, bytes: sizes.reduce((a, b) => a + b, 0) }
  if (isCompleteTree(root, spec, sizes)) return { ...done, generated: false }
  fs.rmSync(root, { recursive: true, force: true })
  const tmp = `${root}.tmp`
  fs.rmSync(tmp, { recursive: true, force: true })
  const stream = keystream(2)
  const zeros = Buffer.alloc(spec.maxBytes)
  sizes.forEach((size, i) => {
    const file = path.join(tmp, smallFilePath(spec, i))
    if (i % spec.filesPerDir === 0) fs.mkdirSync(path.dirname(file), { recursive: true })
    fs.writeFileSync(file, stream.update(zeros.subarray(0, size)))
  })
  fs.renameSync(tmp, root)
  return { ...done, generated: true }
}

function isCompleteTree(root: string, spec: SmallTreeSpec, sizes: number[]): boolean {
  try {
    const dirs = fs.readdirSync(root)
    if (dirs.length !== Math.ceil(spec.files / spec.filesPerDir)) return false
    const files = dirs.reduce((n, d) => n + fs.readdirSync(path.join(root, d)).length, 0)
    if (files !== spec.files) return false
    return sizes.every((size, i) => fs.statSync(path.join(root, smallFilePath(spec, i))).size === size)
  } catch {
    return false
  }
}

/** sha256 of a file's content, hex. */
export async function sha256File(file: string): Promise<string> {
  const hash = crypto.createHash('sha256')
  for await (const chunk of fs.createReadStream(file, { highWaterMark: 8 * 2 ** 20 })) hash.update(chunk as Buffer)
  return hash.digest('hex')
}

export interface TreeDigest {
  sha256: string
  files: number
  bytes: number
}

/**
 * A digest of a tree that two copies share only when they hold the same names, sizes and
 * bytes: sha256 over each regular file's relative path, size and content, in sorted path
 * order. Anything else in the tree (a symlink, a device, a leftover temporary file) changes it.
 */
export function treeDigest(root: string): TreeDigest {
  const entries: { rel: string; kind: string; size: number }[] = []
  const walk = (rel: string) => {
    for (const d of fs.readdirSync(path.join(root, rel), { withFileTypes: true })) {
      const child = rel ? `${rel}/${d.name}` : d.name
      if (d.isDirectory()) walk(child)
      else entries.push({ rel: child, kind: d.isFile() ? 'file' : 'other', size: d.isFile() ? fs.statSync(path.join(root, child)).size : 0 })
    }
  }
  walk('')
  entries.sort((a, b) => (a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0))
  const hash = crypto.createHash('sha256')
  let bytes = 0
  for (const e of entries) {
    hash.update(`${e.kind}\0${e.rel}\0${e.size}\0`)
    if (e.kind === 'file') {
      hash.update(fs.readFileSync(path.join(root, e.rel)))
      bytes += e.size
    }
  }
  return { sha256: hash.digest('hex'), files: entries.length, bytes }
}
