// Building source trees and comparing copies: content by hash, type, size, symlink target,
// and (when asked) mode and mtime.
import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `escp-${prefix}-`))
}

export function writeRandom(file: string, sizeBytes: number): void {
  fs.mkdirSync(path.dirname(file), { recursive: true })
  fs.writeFileSync(file, crypto.randomBytes(sizeBytes))
}

export interface EntryFacts {
  type: 'file' | 'directory' | 'symlink'
  size?: number
  sha256?: string
  link?: string
  mode?: number
  mtimeMs?: number
}

/** Every entry under `root` (names as raw bytes in latin1, so any name survives), with its facts. */
export function describeTree(root: string, withMetadata = false): Map<string, EntryFacts> {
  const out = new Map<string, EntryFacts>()
  const walk = (dir: Buffer, rel: string) => {
    for (const name of fs.readdirSync(dir, { encoding: 'buffer' })) {
      const abs = Buffer.concat([dir, Buffer.from('/'), name])
      const r = rel ? `${rel}/${name.toString('latin1')}` : name.toString('latin1')
      const st = fs.lstatSync(abs)
      const meta = withMetadata ? { mode: st.mode & 0o7777, mtimeMs: Math.floor(st.mtimeMs) } : {}
      if (st.isSymbolicLink()) out.set(r, { type: 'symlink', link: fs.readlinkSync(abs, { encoding: 'buffer' }).toString('latin1') })
      else if (st.isDirectory()) {
        out.set(r, { type: 'directory', ...(withMetadata ? { mode: st.mode & 0o7777 } : {}) })
        walk(abs, r)
      } else out.set(r, { type: 'file', size: st.size, sha256: crypto.createHash('sha256').update(fs.readFileSync(abs)).digest('hex'), ...meta })
    }
  }
  walk(Buffer.from(root), '')
  return out
}

export function sha256File(file: string): string {
  const h = crypto.createHash('sha256')
  const fd = fs.openSync(file, 'r')
  const buf = Buffer.allocUnsafe(1 << 20)
  try {
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.byteLength, null)
      if (n === 0) break
      h.update(buf.subarray(0, n))
    }
  } finally {
    fs.closeSync(fd)
  }
  return h.digest('hex')
}

/** Files whose name starts with .escp- (temporary files) anywhere under root. */
export function leftoverTemps(root: string): string[] {
  if (!fs.existsSync(root)) return []
  return (fs.readdirSync(root, { recursive: true }) as string[]).filter((p) => path.basename(p).startsWith('.escp-'))
}
