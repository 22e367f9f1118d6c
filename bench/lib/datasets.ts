// The transfer benchmark's data, generated once and reused: one large file of random bytes,
// and a tree of many small files of random bytes with sizes that are the same on every
// machine. Content comes from an AES-128-CTR keystream (fast, incompressible, reproducible).
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
  // mulberry32: a tiny seeded generator; Math.random cannot be seeded.
  let state = SIZE_SEED
  const next = () => {
    state = (state + 0x6d2b79f5) | 0
    let t = Math.imul(state ^ (state >>> 15), 1 | state)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32
  }
  return Array.from({ length: spec.files }, () => spec.minBytes + Math.floor(next() * (spec.maxBytes - spec.minBytes + 1)))
}

function smallFilePath(spec: SmallTreeSpec, i: number): string {
  return path.join(`d${String(Math.floor(i / spec.filesPerDir)).padStart(3, '0')}`, `f${String(i).padStart(5, '0')}.bin`)
}

function keystream(iv: number): crypto.Cipher {
  const ivBytes = Buffer.alloc(16)
  ivBytes.writeUInt32BE(iv, 0)
  return crypto.createCipheriv('aes-128-ctr', KEY, ivBytes)
}

/** The large file, reused when `dir` holds it at its full size. */
export function ensureBigFile(dir: string, spec: BigFileSpec): Dataset {
  const file = path.join(dir, spec.name)
  const done = { path: file, files: 1, bytes: spec.bytes }
  if (fs.statSync(file, { throwIfNoEntry: false })?.size === spec.bytes) return { ...done, generated: false }
  fs.rmSync(file, { force: true })
  const tmp = `${file}.tmp`
  const fd = fs.openSync(tmp, 'w')
  try {
    const zeros = Buffer.alloc(CHUNK_BYTES)
    const stream = keystream(1)
    for (let written = 0; written < spec.bytes; ) {
      const n = Math.min(CHUNK_BYTES, spec.bytes - written)
      const chunk = stream.update(n === CHUNK_BYTES ? zeros : zeros.subarray(0, n))
      fs.writeSync(fd, chunk)
      written += n
    }
  } finally {
    fs.closeSync(fd)
  }
  fs.renameSync(tmp, file)
  return { ...done, generated: true }
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
