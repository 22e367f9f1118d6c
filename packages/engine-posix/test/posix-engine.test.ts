// What the posix engine does beyond the contract: preallocation, sparse round trips, ENOSPC,
// preserve with nanoseconds, and releasing descriptors and aligned memory when work is abandoned.
// (O_DIRECT, its fallback and the padded tail: the compliance suite.)
import { execFileSync } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { expect } from 'chai'
import { loadPlugins } from '@escp/core'
import type { EscpError } from '@escp/core'
import { expectCode, mountScratch, skipBecause, skipIfUnavailable } from '@escp/core/testing'
import { PosixEngine } from '../src'
import { OPEN_DIRECT, loadBinding } from '../src/binding'

const MiB = 1024 * 1024

function allocatedBytes(file: string): number {
  return fs.statSync(file).blocks * 512
}

describe('posix engine', function () {
  let engine: PosixEngine
  let dir: string

  before(function () {
    engine = new PosixEngine()
    skipIfUnavailable(this, "engine 'posix'", engine.available())
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'escp-posix-'))
  })

  after(function () {
    if (dir) fs.rmSync(dir, { recursive: true, force: true })
  })

  it('reads a source found in the page cache through the cache, O_DIRECT asked or not, and leaves it there', async function () {
    const load = loadBinding()
    if (!load.ok) return skipBecause(this, load.reason)
    const b = load.binding
    const file = path.join(dir, 'hot.bin')
    // Larger than the reads' drop-behind window (8 MiB) several times over, so that dropping
    // pages behind the reads would leave less than half of them.
    const size = 40 * MiB
    fs.writeFileSync(file, crypto.randomBytes(size))
    // Written back, so that its pages could be dropped (dirty pages stay whatever is advised).
    const fd = fs.openSync(file, 'r+')
    fs.fsyncSync(fd)
    fs.closeSync(fd)
    const opened = await b.open(file, OPEN_DIRECT, 0, 0)
    await b.close(opened.fd, false, 0, 0)
    if (!opened.cached) return skipBecause(this, 'this kernel cannot tell what is in the page cache (cachestat: Linux 6.5)')
    expect(opened.direct, 'a cached source is not read with O_DIRECT').to.equal(false)
    // Read it all through the engine: its pages stay cached (no drop-behind, no DONTNEED at close).
    const h = await engine.openRead(file, { direct: true })
    const pool = engine.createBufferPool(MiB, 1)
    const buf = pool.acquire()
    for (let offset = 0; offset < size; offset += MiB) expect(await h.read(buf, offset)).to.equal(MiB)
    pool.release(buf)
    await h.close()
    const again = await b.open(file, OPEN_DIRECT, 0, 0)
    await b.close(again.fd, false, 0, 0)
    expect(again.cached, 'the pages were dropped').to.equal(true)
    // Dropped from the cache (GNU dd's nocache), it is read with O_DIRECT where the file system
    // takes it; a file in memory (tmpfs) cannot be dropped.
    if (/^(tmpfs|ramfs)$/.test(execFileSync('stat', ['-f', '-c', '%T', dir], { encoding: 'utf8' }).trim())) return
    execFileSync('dd', [`of=${file}`, 'oflag=nocache', 'conv=notrunc,fdatasync', 'count=0', 'status=none'])
    const cold = await b.open(file, OPEN_DIRECT, 0, 0)
    await b.close(cold.fd, false, 0, 0)
    expect(cold.cached).to.equal(false)
  })

  it('preallocates the destination when told its size, and not when writing sparse', async function () {
    const file = path.join(dir, 'prealloc')
    const w = await engine.openWrite(file, { sizeBytes: 64 * MiB })
    expect(allocatedBytes(file)).to.be.at.least(64 * MiB)
    expect(fs.statSync(file).size, 'the size is what was written').to.equal(0)
    await w.close()
    const s = await engine.openWrite(path.join(dir, 'sparse-dest'), { sizeBytes: 64 * MiB, sparse: true })
    expect(allocatedBytes(path.join(dir, 'sparse-dest'))).to.be.below(MiB)
    await s.close()
  })

  it('copies a sparse file by its extents and the copy stays sparse', async function () {
    const src = path.join(dir, 'sparse-src')
    const dst = path.join(dir, 'sparse-dst')
    const fd = fs.openSync(src, 'w')
    const pieces = [0, 40 * MiB, 6 * 1024 * MiB - 100_000].map((offset) => ({ offset, data: crypto.randomBytes(100_000) }))
    for (const p of pieces) fs.writeSync(fd, p.data, 0, p.data.length, p.offset)
    fs.closeSync(fd)
    const size = fs.statSync(src).size
    const r = await engine.openRead(src)
    const extents = await r.extents()
    expect(extents, 'ext4 reports extents').to.not.equal(null)
    expect(extents!.reduce((n, e) => n + e.length, 0)).to.be.below(2 * MiB)
    const w = await engine.openWrite(dst, { sizeBytes: size, sparse: true })
    const buf = new Uint8Array(MiB)
    for (const e of extents!) {
      for (let off = e.offset; off < e.offset + e.length; off += MiB) {
        const n = await r.read(buf.subarray(0, Math.min(MiB, e.offset + e.length - off)), off)
        await w.write(buf.subarray(0, n), off)
      }
    }
    await w.truncate(size)
    await w.finish()
    await r.close()
    expect(fs.statSync(dst).size).to.equal(size)
    expect(allocatedBytes(dst), 'allocated on disk, as du shows').to.be.below(4 * MiB)
    const d = fs.openSync(dst, 'r')
    for (const p of pieces) {
      const back = Buffer.alloc(p.data.length)
      fs.readSync(d, back, 0, back.length, p.offset)
      expect(back.equals(p.data)).to.equal(true)
    }
    fs.closeSync(d)
    const du = execFileSync('du', ['-k', dst], { encoding: 'utf8' })
    expect(parseInt(du, 10)).to.be.below(4096)
  })

  it('applies mode, nanosecond times and, as root, owner and group', async function () {
    const file = path.join(dir, 'attrs')
    const w = await engine.openWrite(file)
    await w.write(Buffer.from('x'), 0)
    const root = process.getuid?.() === 0
    await w.finish({ mode: 0o640, atimeNs: 1_600_000_000_123_456_789n, mtimeNs: -1_000_000_001n, ...(root ? { uid: 1234, gid: 5678 } : {}) })
    const st = fs.statSync(file, { bigint: true })
    expect(Number(st.mode & 0o7777n)).to.equal(0o640)
    expect(st.atimeNs).to.equal(1_600_000_000_123_456_789n)
    expect(st.mtimeNs, 'a time before 1970').to.equal(-1_000_000_001n)
    if (root) expect([st.uid, st.gid]).to.deep.equal([1234n, 5678n])
  })

  it('puts a small file in place unnamed until linked (O_TMPFILE) where the file system has it, new or over a file, and nothing at its temporary name', async function () {
    const probe = path.join(dir, 'tmpfile-probe')
    fs.mkdirSync(probe)
    try {
      // O_TMPFILE is __O_TMPFILE (0o20000000) with O_DIRECTORY; Node names neither.
      fs.closeSync(fs.openSync(probe, fs.constants.O_WRONLY | fs.constants.O_DIRECTORY | 0o20000000, 0o600))
    } catch (err) {
      return skipBecause(this, `this file system makes no unnamed file (${(err as NodeJS.ErrnoException).code}); placeFile goes through the temporary name`)
    }
    const at = (name: string) => path.join(probe, name)
    fs.writeFileSync(at('old'), 'old')
    const before = engine.stats().unnamedPlacements
    await engine.placeFile(at('new'), at('.new.tmp'), Buffer.from('new file'), { mode: 0o600, sizeBytes: 8, attributes: { mode: 0o604, mtimeNs: 1_600_000_000_000_000_000n, atimeNs: 1_600_000_000_000_000_000n } })
    await engine.placeFile(at('old'), at('.old.tmp'), Buffer.from('replaced'), { mode: 0o600, sizeBytes: 8 })
    expect(engine.stats().unnamedPlacements - before).to.equal(2)
    expect(fs.readFileSync(at('new'), 'utf8')).to.equal('new file')
    expect(fs.statSync(at('new')).mode & 0o7777).to.equal(0o604)
    expect(fs.statSync(at('new')).mtimeMs).to.equal(1_600_000_000_000)
    expect(fs.readFileSync(at('old'), 'utf8')).to.equal('replaced')
    expect(fs.readdirSync(probe).sort()).to.deep.equal(['new', 'old'])
  })

  it('reports ENOSPC with its errno, at preallocation and at write', async function () {
    const full = mountScratch('tmpfs', ['size=1m'])
    if (typeof full === 'string') skipBecause(this, full)
    const mnt = full.dir
    try {
      const e1 = (await expectCode(() => engine.openWrite(path.join(mnt, 'big'), { sizeBytes: 8 * MiB }), 'ESCP_ERR_IO')) as EscpError
      expect(e1).to.include({ errno: 'ENOSPC', syscall: 'fallocate' })
      const w = await engine.openWrite(path.join(mnt, 'grow'))
      const e2 = (await expectCode(() => w.write(crypto.randomBytes(2 * MiB), 0), 'ESCP_ERR_IO')) as EscpError
      expect(e2).to.include({ errno: 'ENOSPC', syscall: 'pwrite' })
      await w.close()
    } finally {
      full.unmount()
    }
  })

  it('refuses to open something that is not a regular file, without blocking on a fifo', async function () {
    const fifo = path.join(dir, 'fifo')
    execFileSync('mkfifo', [fifo])
    const e = (await expectCode(() => engine.openRead(fifo), 'ESCP_ERR_IO')) as EscpError
    expect(e.message).to.match(/not a regular file/)
  })

  it('releases descriptors and aligned memory when work is abandoned with I/O in flight', async function () {
    const file = path.join(dir, 'abandon')
    fs.writeFileSync(file, crypto.randomBytes(16 * MiB))
    const before = engine.stats()
    const pool = engine.createBufferPool(MiB, 16)
    const handles = await Promise.all([engine.openRead(file, { direct: true }), engine.openRead(file)])
    const bufs = Array.from({ length: 16 }, () => pool.acquire())
    const reads = bufs.map((b, i) => handles[i % 2].read(b, i * MiB))
    // Closing waits for the reads under way; the pool frees what is idle now and the rest as it comes back.
    const closing = handles.map((h) => h.close())
    pool.dispose?.()
    // Counters are process-wide and the garbage collector may free other tests' buffers at any
    // time: these checks compare with what this test holds.
    const held = engine.stats()
    const results = await Promise.allSettled(reads)
    await Promise.all(closing)
    expect(results.every((r) => r.status === 'fulfilled')).to.equal(true)
    await expectCode(() => handles[0].read(new Uint8Array(10), 0), 'ESCP_ERR_BAD_ARGUMENT')
    expect(engine.stats()).to.deep.include({ openFiles: before.openFiles, inFlight: 0 })
    // Lent buffers are freed as they are given back, not left to the garbage collector.
    for (const b of bufs) pool.release(b)
    expect(bufs.every((b) => b.buffer.byteLength === 0), 'released buffers are detached').to.equal(true)
    expect(held.alignedBuffers - engine.stats().alignedBuffers).to.be.at.least(16)
    expect(held.alignedBytes - engine.stats().alignedBytes).to.be.at.least(16 * MiB)
  })

  it('takes uncachedWrites from the plugin options, and refuses a value that is not true or false', async function () {
    const { registry } = await loadPlugins({ plugins: [require.resolve('@escp/engine-posix')], options: { uncachedWrites: false } })
    expect(await registry.resolve('engine', 'posix').writesUncached?.(dir)).to.equal(false)
    await expectCode(() => loadPlugins({ plugins: [require.resolve('@escp/engine-posix')], options: { uncachedWrites: 'no' } }), 'ESCP_ERR_BAD_ARGUMENT')
  })
})
