// What the uring engine does beyond the contract, on this thread's ring: more I/O at once than
// the ring holds, submitted in batches through registered buffers; reads at and past the end of
// the file; errors with their errno; closing with I/O in flight. (O_DIRECT: the compliance suite.)
import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { expect } from 'chai'
import type { EscpError } from '@escp/core'
import { expectCode, mountScratch, skipBecause, skipIfUnavailable } from '@escp/core/testing'
import { UringEngine } from '../src'
import { loadNative } from '../src/binding'

const KiB = 1024
const MiB = 1024 * KiB
describe('uring engine', function () {
  let engine: UringEngine
  let dir: string

  before(function () {
    engine = new UringEngine()
    skipIfUnavailable(this, "engine 'uring'", engine.available())
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'escp-uring-'))
  })

  after(function () {
    if (dir) fs.rmSync(dir, { recursive: true, force: true })
  })

  it('takes four times more reads and writes at once than its ring holds, submitted in batches into registered buffers', async function () {
    const file = path.join(dir, 'many')
    const block = 4 * KiB
    const depth = engine.stats().queueDepth
    const count = 4 * depth
    const data = crypto.randomBytes(count * block)
    fs.writeFileSync(file, data)
    const pool = engine.createBufferPool(block, count)
    const bufs = Array.from({ length: count }, () => pool.acquire())
    try {
      const r = await engine.openRead(file)
      const before = engine.stats()
      const reads = bufs.map((b, i) => r.read(b, i * block))
      // Everything queued in this turn of the event loop goes to the kernel together, as far as
      // the ring has room; the rest waits for completions.
      await new Promise((resolve) => setImmediate(resolve))
      const first = engine.stats()
      expect(first.enterCalls - before.enterCalls, 'one io_uring_enter').to.equal(1)
      expect(first.entriesSubmitted - before.entriesSubmitted, 'carrying a full ring').to.equal(depth)
      expect(await Promise.all(reads)).to.deep.equal(bufs.map(() => block))
      await r.close()
      bufs.forEach((b, i) => expect(Buffer.from(b).equals(data.subarray(i * block, (i + 1) * block)), `block ${i}`).to.equal(true))

      const copy = path.join(dir, 'many-copy')
      const w = await engine.openWrite(copy, { sizeBytes: data.length })
      await Promise.all(bufs.map((b, i) => w.write(b, i * block)))
      await w.finish()
      expect(fs.readFileSync(copy).equals(data)).to.equal(true)

      const after = engine.stats()
      expect(after.entriesSubmitted - before.entriesSubmitted).to.be.at.least(2 * count)
      expect(after.enterCalls - before.enterCalls, 'several entries per io_uring_enter').to.be.below((after.entriesSubmitted - before.entriesSubmitted) / 2)
      expect(after.fixedTrips - before.fixedTrips, 'through registered buffers (READ_FIXED / WRITE_FIXED)').to.be.at.least(2 * count)
      expect(after.inFlight).to.equal(0)
      expect(after.peakInKernel, 'never more in the kernel than the ring holds').to.equal(depth)
    } finally {
      bufs.forEach((b) => pool.release(b))
      pool.dispose?.()
    }
  })

  it('reads up to the end of the file and no further, with and without O_DIRECT', async function () {
    const file = path.join(dir, 'short')
    const data = crypto.randomBytes(10_000)
    fs.writeFileSync(file, data)
    const pool = engine.createBufferPool(64 * KiB, 1)
    const buf = pool.acquire()
    try {
      for (const direct of [false, true]) {
        const r = await engine.openRead(file, { direct })
        expect(await r.read(buf, 0), `direct: ${direct}`).to.equal(10_000)
        expect(Buffer.from(buf.subarray(0, 10_000)).equals(data)).to.equal(true)
        expect(await r.read(buf, 8192)).to.equal(10_000 - 8192)
        expect(Buffer.from(buf.subarray(0, 10_000 - 8192)).equals(data.subarray(8192))).to.equal(true)
        expect(await r.read(buf, 10_000)).to.equal(0)
        expect(await r.read(buf, 1 << 20)).to.equal(0)
        await r.close()
      }
    } finally {
      pool.release(buf)
      pool.dispose?.()
    }
  })

  it('reports a missing file as ENOENT', async function () {
    const e = (await expectCode(() => engine.openRead(path.join(dir, 'absent')), 'ESCP_ERR_IO')) as EscpError
    expect(e).to.include({ errno: 'ENOENT' })
  })

  it('reports a full file system as ENOSPC, from the ring, with its errno', async function () {
    const tmpfs = mountScratch('tmpfs', ['size=1m'])
    if (typeof tmpfs === 'string') skipBecause(this, tmpfs)
    try {
      const w = await engine.openWrite(path.join(tmpfs.dir, 'grow'))
      const e = (await expectCode(() => w.write(crypto.randomBytes(2 * MiB), 0), 'ESCP_ERR_IO')) as EscpError
      expect(e).to.include({ errno: 'ENOSPC', errnoNumber: -28, syscall: 'write' })
      expect(e.message).to.match(/ENOSPC/)
      await w.close()
    } finally {
      tmpfs.unmount()
    }
  })

  it('rejects a read the kernel refuses with errno and syscall (the raw module: EBADF on a write-only descriptor)', async function () {
    const load = loadNative()
    if (!load.ok) skipBecause(this, `the uring native module did not load: ${load.reason}`)
    const native = load.native
    const file = path.join(dir, 'write-only')
    const fd = fs.openSync(file, 'w')
    try {
      native.attach(fd, false)
      const reading = native.read(fd, new Uint8Array(10), 0)
      native.submit()
      const err = await reading.then(
        () => expect.fail('the read succeeded'),
        (e: { errno: number; syscall: string }) => e,
      )
      expect(err).to.include({ errno: -os.constants.errno.EBADF, syscall: 'read' })
    } finally {
      native.detach(fd)
      fs.closeSync(fd)
    }
  })

  it('gives back descriptors, registered files and aligned memory when handles close with I/O in flight', async function () {
    const file = path.join(dir, 'abandon')
    fs.writeFileSync(file, crypto.randomBytes(16 * MiB))
    const before = engine.stats()
    const pool = engine.createBufferPool(MiB, 16)
    const handles = await Promise.all([engine.openRead(file, { direct: true }), engine.openRead(file)])
    expect(engine.stats().fixedFiles).to.equal(before.fixedFiles + 2)
    const bufs = Array.from({ length: 16 }, () => pool.acquire())
    const reads = bufs.map((b, i) => handles[i % 2].read(b, i * MiB))
    // Closing waits for the reads under way; the pool frees what is idle now and the rest as it comes back.
    const closing = handles.map((h) => h.close())
    pool.dispose?.()
    // Aligned-memory counters are process-wide and the garbage collector may free other tests'
    // buffers at any time: these checks compare with what this test holds.
    const held = engine.stats()
    expect(held.inFlight).to.be.at.least(16)
    const results = await Promise.allSettled(reads)
    await Promise.all(closing)
    expect(results.every((r) => r.status === 'fulfilled')).to.equal(true)
    await expectCode(() => handles[0].read(new Uint8Array(10), 0), 'ESCP_ERR_BAD_ARGUMENT')
    // A drop-behind fadvise the reads queued completes on its own, possibly after the close.
    for (let i = 0; i < 200 && engine.stats().inFlight > 0; i++) await new Promise((resolve) => setTimeout(resolve, 10))
    expect(engine.stats()).to.deep.include({ openFiles: before.openFiles, fixedFiles: before.fixedFiles, inFlight: 0 })
    for (const b of bufs) pool.release(b)
    expect(bufs.every((b) => b.buffer.byteLength === 0), 'released buffers are detached').to.equal(true)
    const now = engine.stats()
    expect(held.alignedBuffers - now.alignedBuffers).to.be.at.least(16)
    expect(held.alignedBytes - now.alignedBytes).to.be.at.least(16 * MiB)
    expect(held.registeredBuffers - now.registeredBuffers, 'and out of the ring').to.be.at.least(16)
  })
})
