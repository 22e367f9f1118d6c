// Rings per thread: worker threads each with their own ring doing I/O at once, a small queue
// depth with I/O the kernel completes in parts, and a worker terminated with I/O in flight.
import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { Worker } from 'node:worker_threads'
import { expect } from 'chai'
import { skipBecause, skipIfUnavailable } from '@escp/core/testing'
import { UringEngine } from '../src'

const MiB = 1024 * 1024
const dist = path.join(__dirname, '..', 'dist')

/** io_uring instances this process holds open. */
function ringFds(): number {
  let n = 0
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try {
      if (fs.readlinkSync(`/proc/self/fd/${fd}`) === 'anon_inode:[io_uring]') n++
    } catch {
      // closed while listing
    }
  }
  return n
}

/** A worker running `body` (an async function body with `engine`, `data` and `post` in scope) on the built package. */
function startWorker(body: string, data: unknown): Worker {
  const code = `
    const { parentPort, workerData } = require('node:worker_threads')
    const { UringEngine } = require(workerData.dist)
    const { loadNative } = require(workerData.dist + '/binding')
    const fs = require('node:fs')
    const post = (m) => parentPort.postMessage(m)
    ;(async (data) => { ${body} })(workerData.data).catch((err) => post({ error: String(err && err.stack || err) }))`
  return new Worker(code, { eval: true, workerData: { dist, data } })
}

function nextMessage<T>(w: Worker): Promise<T> {
  return new Promise((resolve, reject) => {
    w.once('message', (m: T & { error?: string }) => (m.error ? reject(new Error(m.error)) : resolve(m)))
    w.once('error', reject)
  })
}

function exited(w: Worker): Promise<number> {
  return new Promise((resolve) => w.once('exit', resolve))
}

async function until(check: () => boolean, timeoutMs = 5000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  while (!check() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
  return check()
}

describe('uring engine across worker threads', function () {
  this.timeout(60_000)
  let engine: UringEngine
  let dir: string

  before(function () {
    engine = new UringEngine()
    skipIfUnavailable(this, "engine 'uring'", engine.available())
    if (!fs.existsSync(path.join(dist, 'index.js'))) skipBecause(this, 'the package is not built (npm run build)')
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'escp-uring-threads-'))
  })

  after(function () {
    if (dir) fs.rmSync(dir, { recursive: true, force: true })
  })

  it('gives each of 8 worker threads its own ring, doing I/O at once, and closes each ring when its thread ends', async function () {
    const baseline = ringFds()
    // Each worker sets up its ring, waits until all have, then copies a file of its own in 64 KiB blocks.
    const body = `
      const engine = new UringEngine()
      const pool = engine.createBufferPool(65536, 16)
      post({ ready: true })
      await new Promise((resolve) => parentPort.once('message', resolve))
      const src = data.file, dst = data.file + '.copy'
      const size = fs.statSync(src).size
      const r = await engine.openRead(src, { direct: true })
      const w = await engine.openWrite(dst, { direct: true, sizeBytes: size })
      const bufs = Array.from({ length: 16 }, () => pool.acquire())
      await Promise.all(bufs.map(async (buf, i) => {
        for (let off = i * 65536; off < size; off += 16 * 65536) {
          const n = await r.read(buf, off)
          await w.write(buf.subarray(0, n), off)
        }
      }))
      await r.close()
      await w.finish()
      bufs.forEach((b) => pool.release(b))
      pool.dispose()
      post({ stats: engine.stats() })`
    const files = Array.from({ length: 8 }, (_, i) => {
      const file = path.join(dir, `src${i}`)
      fs.writeFileSync(file, crypto.randomBytes(4 * MiB + i * 1000))
      return file
    })
    const workers = files.map((file) => startWorker(body, { file }))
    const exits = workers.map(exited)
    try {
      await Promise.all(workers.map((w) => nextMessage(w)))
      expect(ringFds() - baseline, 'a ring per worker thread').to.equal(8)
      const done = workers.map((w) => nextMessage<{ stats: { ring: boolean; queueDepth: number; inFlight: number; fixedTrips: number } }>(w))
      workers.forEach((w) => w.postMessage('go'))
      for (const { stats } of await Promise.all(done)) {
        expect(stats).to.deep.include({ ring: true, queueDepth: 64, inFlight: 0 })
        expect(stats.fixedTrips).to.be.greaterThan(0)
      }
      for (const file of files) expect(fs.readFileSync(`${file}.copy`).equals(fs.readFileSync(file))).to.equal(true)
      expect(await Promise.all(exits), 'every worker exits by itself, its ring idle').to.deep.equal(files.map(() => 0))
      expect(await until(() => ringFds() === baseline), 'the rings are closed').to.equal(true)
    } finally {
      await Promise.all(workers.map((w) => w.terminate()))
    }
  })

  it('keeps at most its queue depth in the kernel and completes an I/O the kernel returns in parts', async function () {
    // A ring of 4 entries, each moving at most 4 KiB: a 1 MiB read takes 256 trips.
    const body = `
      loadNative().native.configure(4, 4096)
      const engine = new UringEngine({ queueDepth: 4 })
      const r = await engine.openRead(data.file)
      const big = new Uint8Array(${MiB})
      const whole = await r.read(big, 0)
      const small = Array.from({ length: 100 }, () => new Uint8Array(4096))
      const counts = await Promise.all(small.map((b, i) => r.read(b, i * 4096)))
      await r.close()
      const same = Buffer.from(big).equals(fs.readFileSync(data.file).subarray(0, ${MiB})) &&
        small.every((b, i) => Buffer.from(b).equals(big.subarray(i * 4096, (i + 1) * 4096)))
      post({ whole, counts, same, stats: engine.stats() })`
    const file = path.join(dir, 'parts')
    fs.writeFileSync(file, crypto.randomBytes(2 * MiB))
    const w = startWorker(body, { file })
    try {
      const out = await nextMessage<{ whole: number; counts: number[]; same: boolean; stats: { queueDepth: number; entriesSubmitted: number; inFlight: number; peakInKernel: number } }>(w)
      expect(out.whole).to.equal(MiB)
      expect(out.counts).to.deep.equal(out.counts.map(() => 4096))
      expect(out.same).to.equal(true)
      expect(out.stats).to.deep.include({ queueDepth: 4, inFlight: 0, peakInKernel: 4 })
      expect(out.stats.entriesSubmitted).to.be.at.least(256 + 100)
    } finally {
      await w.terminate()
    }
  })

  it('takes its queue depth from the plugin option uringQueueDepth and uncachedWrites as posix does, and refuses values it cannot use', async function () {
    const body = `
      const { loadPlugins } = require('@escp/core')
      const { registry } = await loadPlugins({ plugins: [workerData.dist + '/index.js'], options: { uringQueueDepth: 8 } })
      const engine = registry.resolve('engine', 'uring')
      engine.createBufferPool(4096, 1)
      const bad = await loadPlugins({ plugins: [workerData.dist + '/index.js'], options: { uringQueueDepth: 0 } }).catch((err) => err.code)
      // uncachedWrites as for posix: false keeps buffered writes in the page cache.
      const kept = (await loadPlugins({ plugins: [workerData.dist + '/index.js'], options: { uncachedWrites: false } })).registry.resolve('engine', 'uring')
      const uncached = await kept.writesUncached(require('node:os').tmpdir())
      const badUncached = await loadPlugins({ plugins: [workerData.dist + '/index.js'], options: { uncachedWrites: 1 } }).catch((err) => err.code)
      post({ stats: engine.stats(), bad, uncached, badUncached })`
    const w = startWorker(body, {})
    try {
      const out = await nextMessage<{ stats: { queueDepth: number; ring: boolean }; bad: string; uncached: boolean; badUncached: string }>(w)
      expect(out.stats).to.deep.include({ queueDepth: 8, ring: true })
      expect(out.bad).to.equal('ESCP_ERR_BAD_ARGUMENT')
      expect(out.uncached, 'writesUncached with uncachedWrites false').to.equal(false)
      expect(out.badUncached).to.equal('ESCP_ERR_BAD_ARGUMENT')
    } finally {
      await w.terminate()
    }
  })

  it('survives a worker terminated with I/O in flight, and gives back its ring, descriptors and memory', async function () {
    const baseline = ringFds()
    const before = engine.stats()
    const body = `
      const engine = new UringEngine()
      const pool = engine.createBufferPool(${MiB}, 32)
      const r = await engine.openRead(data.file, { direct: true })
      const w = await engine.openWrite(data.file + '.out', { sizeBytes: ${32 * MiB} })
      for (let i = 0; i < 32; i++) {
        const buf = pool.acquire()
        r.read(buf, i * ${MiB}).then((n) => w.write(buf.subarray(0, n), i * ${MiB}))
      }
      setImmediate(() => post({ stats: engine.stats() }))`
    const file = path.join(dir, 'terminated')
    fs.writeFileSync(file, crypto.randomBytes(32 * MiB))
    const w = startWorker(body, { file })
    const { stats } = await nextMessage<{ stats: { inFlight: number; ring: boolean } }>(w)
    expect(stats.ring).to.equal(true)
    expect(stats.inFlight, 'I/O in flight when the worker is terminated').to.be.greaterThan(0)
    await w.terminate()
    expect(await until(() => ringFds() === baseline), 'its ring is closed').to.equal(true)
    const settled = await until(() => {
      const s = engine.stats()
      return s.openFiles === before.openFiles && s.alignedBuffers <= before.alignedBuffers
    })
    expect(settled, `descriptors and buffers given back: ${JSON.stringify(engine.stats())} vs ${JSON.stringify(before)}`).to.equal(true)
  })
})
