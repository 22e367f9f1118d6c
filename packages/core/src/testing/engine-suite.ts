// Compliance suite for the IoEngine contract. Buffers come from the engine's own pool, as in
// a transfer, so engines that need aligned memory (O_DIRECT) are tested the way they are used.
import { execFileSync } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { expect } from 'chai'
import type { BufferPool, IoEngine } from '../contracts/io-engine'
import { directFlags, expectCode, mountScratch, openFdCount, skipBecause, skipIfUnavailable } from './helpers'

export interface EngineSuiteOptions {
  /** False for engines that discard writes (dummy): only reading and the sink are checked. */
  stores: boolean
  /** Directory for test files (default: the OS temp dir). */
  tmpDir?: string
  /**
   * The engine does O_DIRECT when asked (Linux): checks the padded tail, unaligned memory and
   * offsets, and the fallback to buffered I/O where the file system refuses it (ramfs, as root).
   */
  direct?: boolean
}

const BLOCK = 65536
const MiB = 1024 ** 2
const GiB = 1024 ** 3

export function engineCompliance(label: string, make: () => IoEngine | Promise<IoEngine>, options: EngineSuiteOptions): void {
  describe(`IoEngine compliance: ${label}`, function () {
    let engine: IoEngine
    let dir: string
    let pool: BufferPool
    let fdsBefore: number | undefined

    before(async function () {
      engine = await make()
      skipIfUnavailable(this, `engine '${engine.name}'`, engine.available())
      dir = fs.mkdtempSync(path.join(options.tmpDir ?? os.tmpdir(), `escp-engine-${engine.name}-`))
      pool = engine.createBufferPool(BLOCK, 4)
    })

    after(function () {
      if (dir) fs.rmSync(dir, { recursive: true, force: true })
    })

    beforeEach(function () {
      fdsBefore = openFdCount(dir)
    })

    afterEach(function () {
      if (this.currentTest?.state === 'passed' && fdsBefore !== undefined) {
        expect(openFdCount(dir), 'file descriptors left open').to.equal(fdsBefore)
      }
    })

    function fill(buf: Uint8Array, length: number): Uint8Array {
      const view = buf.subarray(0, length)
      view.set(crypto.randomBytes(length))
      return view
    }

    it('hands out pooled buffers of the asked size, reuses them and refuses to overdraw', async function () {
      const p = engine.createBufferPool(BLOCK, 2)
      const a = p.acquire()
      const b = p.acquire()
      expect(a.byteLength).to.equal(BLOCK)
      await expectCode(() => p.acquire(), 'ESCP_ERR_BAD_ARGUMENT')
      p.release(a)
      expect(p.acquire()).to.equal(a)
      p.release(a)
      p.release(b)
    })

    it('reads a file of known size and returns a short read at end of file', async function () {
      const file = path.join(dir, 'short')
      const data = crypto.randomBytes(1000)
      fs.writeFileSync(file, data)
      const h = await engine.openRead(file)
      const buf = pool.acquire()
      try {
        expect(h.sizeBytes).to.equal(1000)
        expect(await h.read(buf, 0)).to.equal(1000)
        if (options.stores) expect(Buffer.from(buf.subarray(0, 1000)).equals(data)).to.equal(true)
        expect(await h.read(buf, 900)).to.equal(100)
        expect(await h.read(buf, 1000)).to.equal(0)
      } finally {
        pool.release(buf)
        await h.close()
      }
    })

    it('reports a missing file with code, errno and syscall', async function () {
      const err = (await expectCode(() => engine.openRead(path.join(dir, 'nope')), 'ESCP_ERR_IO')) as Record<string, unknown>
      expect(err.errno).to.equal('ENOENT')
      expect(err.syscall).to.be.a('string')
      expect(err.path).to.equal(path.join(dir, 'nope'))
    })

    if (!options.stores) {
      it('discards writes and reports them done', async function () {
        const h = await engine.openWrite(path.join(dir, 'sink'))
        const buf = pool.acquire()
        try {
          await h.write(fill(buf, BLOCK), 0)
          await h.truncate(BLOCK)
          await h.finish()
        } finally {
          pool.release(buf)
        }
      })
      return
    }

    it('writes blocks at offsets in any order and reads them back', async function () {
      const file = path.join(dir, 'blocks')
      const w = await engine.openWrite(file, { sizeBytes: 3 * BLOCK + 123 })
      const bufs = [pool.acquire(), pool.acquire(), pool.acquire(), pool.acquire()]
      const expected = Buffer.alloc(3 * BLOCK + 123)
      try {
        for (const i of [2, 0, 3, 1]) {
          const len = i === 3 ? 123 : BLOCK
          const view = fill(bufs[i], len)
          Buffer.from(view).copy(expected, i * BLOCK)
          await w.write(view, i * BLOCK)
        }
        await w.truncate(expected.byteLength)
        await w.finish()
        expect(fs.readFileSync(file).equals(expected)).to.equal(true)
        const r = await engine.openRead(file)
        try {
          expect(r.sizeBytes).to.equal(expected.byteLength)
          for (let i = 0; i < 4; i++) {
            const n = await r.read(bufs[0], i * BLOCK)
            expect(n).to.equal(i === 3 ? 123 : BLOCK)
            expect(Buffer.from(bufs[0].subarray(0, n)).equals(expected.subarray(i * BLOCK, i * BLOCK + n))).to.equal(true)
          }
        } finally {
          await r.close()
        }
      } finally {
        bufs.forEach((b) => pool.release(b))
      }
    })

    it('writes and reads at offsets beyond 4 GiB', async function () {
      const file = path.join(dir, 'big')
      const offset = 5 * GiB + 4096
      const w = await engine.openWrite(file)
      const buf = pool.acquire()
      try {
        const data = Buffer.from(fill(buf, BLOCK))
        await w.write(buf, offset)
        await w.truncate(offset + BLOCK)
        await w.finish()
        expect(fs.statSync(file).size).to.equal(offset + BLOCK)
        const r = await engine.openRead(file)
        try {
          buf.fill(0)
          expect(await r.read(buf, offset)).to.equal(BLOCK)
          expect(Buffer.from(buf).equals(data)).to.equal(true)
          const extents = await r.extents()
          if (extents !== null) {
            const covering = extents.find((e) => e.offset <= offset && e.offset + e.length >= offset + BLOCK)
            expect(covering, `extents ${JSON.stringify(extents)} miss the data`).to.not.equal(undefined)
          }
        } finally {
          await r.close()
        }
      } finally {
        pool.release(buf)
      }
    })

    it('reports extents in order and inside the file, when it reports them', async function () {
      const file = path.join(dir, 'holes')
      const fd = fs.openSync(file, 'w')
      fs.writeSync(fd, crypto.randomBytes(4096), 0, 4096, 0)
      fs.writeSync(fd, crypto.randomBytes(4096), 0, 4096, 8 * 1024 * 1024)
      fs.ftruncateSync(fd, 16 * 1024 * 1024)
      fs.closeSync(fd)
      const r = await engine.openRead(file)
      try {
        const extents = await r.extents()
        if (extents === null) return
        let end = 0
        for (const e of extents) {
          expect(e.offset).to.be.at.least(end)
          expect(e.length).to.be.greaterThan(0)
          end = e.offset + e.length
        }
        expect(end).to.be.at.most(r.sizeBytes as number)
        for (const dataAt of [0, 8 * 1024 * 1024]) {
          expect(extents.some((e) => e.offset <= dataAt && e.offset + e.length >= dataAt + 4096)).to.equal(true)
        }
      } finally {
        await r.close()
      }
    })

    it('leaves holes for all-zero blocks when writing sparse', async function () {
      const file = path.join(dir, 'sparse')
      const w = await engine.openWrite(file, { sparse: true })
      const buf = pool.acquire()
      try {
        buf.fill(0)
        for (let i = 0; i < 64; i++) await w.write(buf, i * BLOCK)
        const tail = fill(buf, 100)
        await w.write(tail, 64 * BLOCK)
        await w.truncate(64 * BLOCK + 100)
        await w.finish()
      } finally {
        pool.release(buf)
      }
      const st = fs.statSync(file)
      expect(st.size).to.equal(64 * BLOCK + 100)
      expect(st.blocks * 512).to.be.lessThan(16 * BLOCK)
      const content = fs.readFileSync(file)
      expect(content.subarray(0, 64 * BLOCK).every((b) => b === 0)).to.equal(true)
    })

    it('applies mode and times on finish', async function () {
      const file = path.join(dir, 'attrs')
      const w = await engine.openWrite(file, { mode: 0o600 })
      const mtimeNs = 1_600_000_000_123_456_000n
      await w.finish({ mode: 0o640, atimeNs: mtimeNs, mtimeNs })
      const st = fs.statSync(file, { bigint: true })
      expect(Number(st.mode & 0o7777n)).to.equal(0o640)
      // Microseconds at least; native engines keep nanoseconds.
      expect(st.mtimeNs / 1000n).to.equal(mtimeNs / 1000n)
    })

    it('opens an existing file for writing without truncating it when asked not to create', async function () {
      const file = path.join(dir, 'existing')
      fs.writeFileSync(file, Buffer.alloc(3 * BLOCK, 1))
      const buf = pool.acquire()
      try {
        const data = Buffer.from(fill(buf, BLOCK))
        const a = await engine.openWrite(file, { create: false })
        const b = await engine.openWrite(file, { create: false })
        await b.write(buf, 2 * BLOCK)
        await a.close()
        await b.close()
        const content = fs.readFileSync(file)
        expect(content.byteLength).to.equal(3 * BLOCK)
        expect(content.subarray(0, BLOCK).every((x) => x === 1)).to.equal(true)
        expect(content.subarray(2 * BLOCK).equals(data)).to.equal(true)
        await expectCode(() => engine.openWrite(path.join(dir, 'absent'), { create: false }), 'ESCP_ERR_IO')
      } finally {
        pool.release(buf)
      }
    })

    it('takes file names that are not UTF-8, as bytes', async function () {
      const name = Buffer.concat([Buffer.from(dir + '/'), Buffer.from([0x66, 0xff, 0xfe, 0x2e, 0x62, 0x69, 0x6e])])
      const w = await engine.openWrite(name)
      const buf = pool.acquire()
      try {
        await w.write(fill(buf, 10), 0)
        await w.finish()
        const r = await engine.openRead(name)
        expect(r.sizeBytes).to.equal(10)
        await r.close()
        expect(fs.readdirSync(dir, { encoding: 'buffer' }).some((n) => n.includes(0xff))).to.equal(true)
      } finally {
        pool.release(buf)
      }
    })

    it('reports a write into a missing directory with errno', async function () {
      const err = (await expectCode(() => engine.openWrite(path.join(dir, 'no', 'such', 'dir')), 'ESCP_ERR_IO')) as Record<string, unknown>
      expect(err.errno).to.equal('ENOENT')
    })

    it('reads a small file whole in one call, where the engine offers it', async function () {
      if (!engine.readFile) return skipBecause(this, `engine '${engine.name}' has no readFile`)
      const file = path.join(dir, 'whole-read')
      const data = crypto.randomBytes(5000)
      fs.writeFileSync(file, data)
      const buf = pool.acquire()
      try {
        expect(await engine.readFile(file, buf.subarray(0, 5000))).to.equal(5000)
        if (options.stores) expect(Buffer.from(buf.subarray(0, 5000)).equals(data)).to.equal(true)
        // A buffer larger than the file: a short read, as at the end of any file.
        expect(await engine.readFile(file, buf)).to.equal(5000)
        const err = (await expectCode(() => (engine.readFile as NonNullable<IoEngine['readFile']>)(path.join(dir, 'nope'), buf), 'ESCP_ERR_IO')) as Record<string, unknown>
        expect(err.errno).to.equal('ENOENT')
      } finally {
        pool.release(buf)
      }
    })

    it('lists a directory in one call, in byte order of the names, as lstat sees each entry, where the engine offers it', async function () {
      if (!engine.listDirectory) return skipBecause(this, `engine '${engine.name}' has no listDirectory`)
      const listed = path.join(dir, 'listed')
      fs.mkdirSync(path.join(listed, 'sub'), { recursive: true })
      fs.writeFileSync(path.join(listed, 'b.bin'), crypto.randomBytes(3000), { mode: 0o640 })
      fs.writeFileSync(path.join(listed, 'a.bin'), '')
      const odd = Buffer.from([0x7a, 0xff, 0x0a, 0x41])
      fs.writeFileSync(Buffer.concat([Buffer.from(listed + '/'), odd]), 'x')
      fs.symlinkSync('b.bin', path.join(listed, 'link'))
      fs.symlinkSync('x'.repeat(300), path.join(listed, 'long-link'))
      fs.utimesSync(path.join(listed, 'b.bin'), new Date(1_600_000_000_123), new Date(1_500_000_000_456))
      const entries = [...(await engine.listDirectory(listed))]
      const names = [Buffer.from('a.bin'), Buffer.from('b.bin'), Buffer.from('link'), Buffer.from('long-link'), Buffer.from('sub'), odd].sort(Buffer.compare)
      expect(entries.map((e) => e.name.toString('hex'))).to.deep.equal(names.map((n) => n.toString('hex')))
      for (const e of entries) {
        const st = fs.lstatSync(Buffer.concat([Buffer.from(listed + '/'), e.name]), { bigint: true })
        const type = st.isFile() ? 'file' : st.isDirectory() ? 'directory' : 'symlink'
        expect(e.error, e.name.toString()).to.equal(undefined)
        // Reading a symlink's target may touch its atime, after the listing's lstat.
        const atimeNs = type === 'symlink' ? e.atimeNs : st.atimeNs
        expect([e.type, e.mode, e.uid, e.gid, e.sizeBytes, e.allocatedBytes, e.atimeNs, e.mtimeNs], e.name.toString()).to.deep.equal([type, Number(st.mode & 0o7777n), Number(st.uid), Number(st.gid), Number(st.size), Number(st.blocks) * 512, atimeNs, st.mtimeNs])
      }
      const byName = new Map(entries.map((e) => [e.name.toString('latin1'), e]))
      expect(byName.get('link')?.linkTarget?.toString()).to.equal('b.bin')
      expect(byName.get('long-link')?.linkTarget?.toString()).to.equal('x'.repeat(300))
      expect(byName.get('b.bin')?.linkTarget).to.equal(undefined)
      const err = (await expectCode(() => (engine.listDirectory as NonNullable<IoEngine['listDirectory']>)(path.join(dir, 'nope')), 'ESCP_ERR_IO')) as Record<string, unknown>
      expect(err.errno).to.equal('ENOENT')
      await expectCode(() => (engine.listDirectory as NonNullable<IoEngine['listDirectory']>)(path.join(listed, 'b.bin')), 'ESCP_ERR_IO')
      // A symlink to a directory is followed, unless told not to.
      fs.symlinkSync('sub', path.join(listed, 'to-sub'))
      fs.writeFileSync(path.join(listed, 'sub', 'inside'), 'x')
      expect([...(await engine.listDirectory(path.join(listed, 'to-sub')))].map((e) => e.name.toString())).to.deep.equal(['inside'])
      const refused = (await expectCode(() => (engine.listDirectory as NonNullable<IoEngine['listDirectory']>)(path.join(listed, 'to-sub'), { noFollow: true }), 'ESCP_ERR_IO')) as Record<string, unknown>
      expect(refused.errno).to.be.oneOf(['ENOTDIR', 'ELOOP'])
    })

    it('renames a file over a file or a symlink without following it, and not over a directory, where the engine offers it', async function () {
      if (!engine.rename) return skipBecause(this, `engine '${engine.name}' has no rename`)
      const rename = engine.rename.bind(engine)
      const at = (name: string) => path.join(dir, `rename-${name}`)
      fs.writeFileSync(at('a'), 'a')
      fs.writeFileSync(at('b'), 'b')
      fs.writeFileSync(at('target'), 'target')
      fs.symlinkSync(at('target'), at('link'))
      fs.mkdirSync(at('dir'))
      await Promise.all([rename(at('a'), at('a2')), rename(at('b'), at('link'))])
      expect(fs.readFileSync(at('a2'), 'utf8')).to.equal('a')
      expect(fs.lstatSync(at('link')).isFile()).to.equal(true)
      expect(fs.readFileSync(at('link'), 'utf8')).to.equal('b')
      expect(fs.readFileSync(at('target'), 'utf8')).to.equal('target')
      fs.writeFileSync(at('c'), 'c')
      const err = (await expectCode(() => rename(at('c'), at('dir')), 'ESCP_ERR_IO')) as Record<string, unknown>
      expect(err.errno).to.equal('EISDIR')
      expect(fs.readFileSync(at('c'), 'utf8')).to.equal('c')
    })

    it('creates a small file in one call, only where nothing is, with its size and attributes', async function () {
      if (!engine.createFile) return skipBecause(this, `engine '${engine.name}' has no createFile`)
      const createFile = engine.createFile.bind(engine)
      const file = path.join(dir, 'whole-create')
      const data = crypto.randomBytes(3000)
      const mtimeNs = 1_600_000_000_123_456_000n
      await createFile(file, data, { mode: 0o600, sizeBytes: 3000, attributes: { mode: 0o640, atimeNs: mtimeNs, mtimeNs } })
      expect(fs.readFileSync(file).equals(data)).to.equal(true)
      const st = fs.statSync(file, { bigint: true })
      expect(Number(st.mode & 0o7777n)).to.equal(0o640)
      expect(st.mtimeNs / 1000n).to.equal(mtimeNs / 1000n)
      // Something at the name, a file or a symlink, is left as it is.
      const err = (await expectCode(() => createFile(file, Buffer.from('other'), { mode: 0o600, sizeBytes: 5 }), 'ESCP_ERR_IO')) as Record<string, unknown>
      expect(err.errno).to.equal('EEXIST')
      expect(fs.readFileSync(file).equals(data)).to.equal(true)
      const link = path.join(dir, 'whole-link')
      fs.symlinkSync(file, link)
      await expectCode(() => createFile(link, Buffer.from('other'), { mode: 0o600, sizeBytes: 5 }), 'ESCP_ERR_IO')
      expect(fs.readFileSync(file).equals(data)).to.equal(true)
      // A dangling symlink: its target is not created through it.
      const dangling = path.join(dir, 'whole-dangling')
      const nowhere = path.join(dir, 'whole-nowhere')
      fs.symlinkSync(nowhere, dangling)
      await expectCode(() => createFile(dangling, Buffer.from('other'), { mode: 0o600, sizeBytes: 5 }), 'ESCP_ERR_IO')
      expect(fs.existsSync(nowhere)).to.equal(false)
      // Sparse: an all-zero block is not written (a hole, where the file system has holes), and
      // the size is set all the same.
      const holes = path.join(dir, 'whole-sparse')
      await createFile(holes, Buffer.alloc(BLOCK), { mode: 0o600, sizeBytes: BLOCK, sparse: true })
      expect(fs.statSync(holes).size).to.equal(BLOCK)
      expect(fs.readFileSync(holes).every((b) => b === 0)).to.equal(true)
      const probe = path.join(dir, 'whole-hole-probe')
      fs.writeFileSync(probe, '')
      fs.truncateSync(probe, BLOCK)
      if (fs.statSync(probe).blocks === 0) expect(fs.statSync(holes).blocks * 512).to.be.lessThan(BLOCK)
    })

    it('leaves nothing behind when creating a small file in one call fails', async function () {
      if (!engine.createFile) return skipBecause(this, `engine '${engine.name}' has no createFile`)
      const file = path.join(dir, 'whole-failed')
      // Fails after the create: giving the file away (anyone but root), or a size beyond what
      // the file system takes (8 PiB: ext4 and xfs refuse it).
      try {
        await engine.createFile(file, Buffer.from('x'), { mode: 0o600, sizeBytes: Number.MAX_SAFE_INTEGER, attributes: { uid: 0, gid: 0 } })
      } catch (err) {
        expect((err as { code?: string }).code).to.equal('ESCP_ERR_IO')
        // It failed after the create, so the cleanup ran.
        expect((err as { syscall?: string }).syscall).to.not.equal('open')
        expect(fs.existsSync(file)).to.equal(false)
        return
      }
      fs.rmSync(file)
      skipBecause(this, 'this file system takes a file of 8 PiB, and root may give it away')
    })

    it('puts a small file in place in one call, whole, over a file or a symlink (not followed) and not over a directory, where the engine offers it', async function () {
      if (!engine.placeFile) return skipBecause(this, `engine '${engine.name}' has no placeFile`)
      const placeFile = engine.placeFile.bind(engine)
      const place = path.join(dir, 'place')
      fs.mkdirSync(place)
      const at = (name: string) => path.join(place, name)
      const temp = (name: string) => at(`.${name}.tmp`)
      const data = crypto.randomBytes(3000)
      const mtimeNs = 1_600_000_000_123_456_000n
      // Where nothing is.
      await placeFile(at('new'), temp('new'), data, { mode: 0o600, sizeBytes: 3000, attributes: { mode: 0o640, atimeNs: mtimeNs, mtimeNs } })
      expect(fs.readFileSync(at('new')).equals(data)).to.equal(true)
      const st = fs.statSync(at('new'), { bigint: true })
      expect(Number(st.mode & 0o7777n)).to.equal(0o640)
      expect(st.mtimeNs / 1000n).to.equal(mtimeNs / 1000n)
      // Over a file, and over a symlink, which is replaced and not followed.
      fs.writeFileSync(at('old'), 'old')
      fs.writeFileSync(at('target'), 'target')
      fs.symlinkSync(at('target'), at('link'))
      await Promise.all([placeFile(at('old'), temp('old'), data, { mode: 0o644, sizeBytes: 3000 }), placeFile(at('link'), temp('link'), data, { mode: 0o644, sizeBytes: 3000 })])
      expect(fs.readFileSync(at('old')).equals(data)).to.equal(true)
      expect(fs.lstatSync(at('link')).isFile()).to.equal(true)
      expect(fs.readFileSync(at('link')).equals(data)).to.equal(true)
      expect(fs.readFileSync(at('target'), 'utf8')).to.equal('target')
      // Not over a directory, and nothing is left of the attempt.
      fs.mkdirSync(at('dir'))
      const err = (await expectCode(() => placeFile(at('dir'), temp('dir'), data, { mode: 0o644, sizeBytes: 3000 }), 'ESCP_ERR_IO')) as Record<string, unknown>
      expect(err.errno).to.equal('EISDIR')
      expect(err.message).to.contain(at('dir'))
      expect(fs.readdirSync(at('dir'))).to.deep.equal([])
      // Sparse: an all-zero block is not written, and the size is set all the same.
      await placeFile(at('zeros'), temp('zeros'), Buffer.alloc(BLOCK), { mode: 0o600, sizeBytes: BLOCK, sparse: true })
      expect(fs.statSync(at('zeros')).size).to.equal(BLOCK)
      expect(fs.readFileSync(at('zeros')).every((b) => b === 0)).to.equal(true)
      expect(fs.readdirSync(place).sort()).to.deep.equal(['dir', 'link', 'new', 'old', 'target', 'zeros'])
    })

    it('leaves nothing behind when putting a small file in place in one call fails', async function () {
      if (!engine.placeFile) return skipBecause(this, `engine '${engine.name}' has no placeFile`)
      const file = path.join(dir, 'place-failed')
      const temp = path.join(dir, '.place-failed.tmp')
      // Fails once the file is made: giving it away (anyone but root), or a size beyond what the
      // file system takes (8 PiB: ext4 and xfs refuse it).
      try {
        await engine.placeFile(file, temp, Buffer.from('x'), { mode: 0o600, sizeBytes: Number.MAX_SAFE_INTEGER, attributes: { uid: 0, gid: 0 } })
      } catch (err) {
        expect((err as { code?: string }).code).to.equal('ESCP_ERR_IO')
        expect(fs.existsSync(file)).to.equal(false)
        expect(fs.existsSync(temp)).to.equal(false)
        return
      }
      fs.rmSync(file)
      skipBecause(this, 'this file system takes a file of 8 PiB, and root may give it away')
    })

    it('does not follow a symlink at the destination', async function () {
      const target = path.join(dir, 'target')
      fs.writeFileSync(target, 'keep')
      const link = path.join(dir, 'link')
      fs.symlinkSync(target, link)
      await expectCode(() => engine.openWrite(link), 'ESCP_ERR_IO')
      expect(fs.readFileSync(target, 'utf8')).to.equal('keep')
    })

    if (options.direct) {
      it('reads and writes with O_DIRECT where the file system takes it, the unaligned tail and unaligned memory included', async function () {
        const file = path.join(dir, 'direct')
        const data = crypto.randomBytes(3 * MiB + 1234)
        const big = engine.createBufferPool(MiB, 1)
        const buf = big.acquire()
        try {
          const w = await engine.openWrite(file, { direct: true, sizeBytes: data.length })
          if (!directFlags(file).some(Boolean)) {
            await w.close()
            skipBecause(this, `the file system of ${dir} refuses O_DIRECT`)
          }
          for (let off = 0; off < data.length; off += MiB) {
            const piece = data.subarray(off, Math.min(off + MiB, data.length))
            buf.set(piece)
            await w.write(buf.subarray(0, piece.length), off)
          }
          // A block decrypted by node:crypto is not aligned.
          await w.write(Buffer.from(data.subarray(0, 5000)), 0)
          const mtimeNs = 1_500_000_000_123_456_789n
          await w.finish({ atimeNs: mtimeNs, mtimeNs })
          expect(fs.statSync(file).size, 'padding of the tail is cut').to.equal(data.length)
          expect(fs.statSync(file, { bigint: true }).mtimeNs, 'the times set at finish outlast cutting the padding').to.equal(mtimeNs)
          expect(fs.readFileSync(file).equals(data)).to.equal(true)

          // A source found in the page cache is read through it (posix, uring): drop the file's
          // pages first (GNU dd's nocache), which a memory file system cannot.
          try {
            execFileSync('dd', [`of=${file}`, 'oflag=nocache', 'conv=notrunc,fdatasync', 'count=0', 'status=none'], { stdio: 'ignore' })
          } catch {
            return skipBecause(this, "dropping a file's pages needs GNU dd (oflag=nocache)")
          }
          const r = await engine.openRead(file, { direct: true })
          try {
            if (/^(tmpfs|ramfs)$/.test(execFileSync('stat', ['-f', '-c', '%T', dir], { encoding: 'utf8' }).trim())) {
              expect(directFlags(file), 'a file in memory is read through the cache').to.deep.equal([false])
              return
            }
            expect(directFlags(file)).to.deep.equal([true])
            const tail = Math.floor(data.length / MiB) * MiB
            expect(await r.read(buf, tail)).to.equal(data.length - tail)
            expect(Buffer.from(buf.subarray(0, data.length - tail)).equals(data.subarray(tail))).to.equal(true)
            // An unaligned offset turns O_DIRECT off for the descriptor instead of failing.
            expect(await r.read(buf.subarray(0, 100), 7)).to.equal(100)
            expect(Buffer.from(buf.subarray(0, 100)).equals(data.subarray(7, 107))).to.equal(true)
            expect(directFlags(file)).to.deep.equal([false])
          } finally {
            await r.close()
          }
        } finally {
          big.release(buf)
          big.dispose?.()
        }
      })

      it('falls back to buffered I/O where the file system refuses O_DIRECT (ramfs, as root)', async function () {
        const ramfs = mountScratch('ramfs')
        if (typeof ramfs === 'string') skipBecause(this, ramfs)
        try {
          const file = path.join(ramfs.dir, 'f')
          const data = crypto.randomBytes(100_000)
          const w = await engine.openWrite(file, { direct: true, sizeBytes: data.length })
          expect(directFlags(file)).to.deep.equal([false])
          await w.write(data, 0)
          await w.finish()
          const r = await engine.openRead(file, { direct: true })
          const back = new Uint8Array(200_000)
          expect(await r.read(back, 0)).to.equal(data.length)
          await r.close()
          expect(Buffer.from(back.subarray(0, data.length)).equals(data)).to.equal(true)
        } finally {
          ramfs.unmount()
        }
      })
    }

    it('releases handles closed without finishing', async function () {
      const w = await engine.openWrite(path.join(dir, 'abandoned'))
      const buf = pool.acquire()
      try {
        await w.write(fill(buf, 10), 0)
      } finally {
        pool.release(buf)
      }
      await w.close()
      await w.close()
    })
  })
}
