// The block API across processes: a C producer and a TypeScript reader agree on the bytes;
// streams run side by side; a producer that dies, or a consumer that lags, is seen for what it
// is; bad input is refused by code; a region is gone once its creator closes it.
import { spawn } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import { expect } from 'chai'
import type { EscpError } from '@escp/core'
import { skipIfUnavailable } from '@escp/core/testing'
import { AVAILABLE, unavailable } from '@escp/core'
import { ShmRegion } from '../src'
import type { ShmReader } from '../src'
import { loadBinding } from '../src/binding'
import { cExample, cProducer, cpuTicks, sleep, startProducer, uniqueRegionName } from './helpers'
import type { Producer } from './helpers'

const MiB = 1024 * 1024

function expectShmError(err: unknown): void {
  expect(err, 'expected an error').to.be.an('error')
  expect((err as { code?: string }).code, (err as Error).message).to.equal('ESCP_ERR_SHM')
}

function runToEnd(binary: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s))
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s))
    child.once('close', (code) => resolve({ code, stdout, stderr }))
  })
}

async function digestOf(reader: ShmReader): Promise<{ sha256: string; bytes: number }> {
  const sha = crypto.createHash('sha256')
  let bytes = 0
  for await (const block of reader) {
    sha.update(block.data)
    bytes += block.data.byteLength
  }
  return { sha256: sha.digest('hex'), bytes }
}

describe('shm block region', function () {
  const regions: ShmRegion[] = []
  const producers: Producer[] = []
  let producer: string

  before(function () {
    const load = loadBinding()
    skipIfUnavailable(this, "engine 'shm'", load.ok ? AVAILABLE : unavailable(load.reason))
  })

  afterEach(function () {
    // A producer whose consumer never came would wait for a free slot for good.
    for (const p of producers.splice(0)) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGTERM')
    for (const r of regions.splice(0)) r.close()
  })

  function needProducer(ctx: Mocha.Context): string {
    const p = cProducer()
    if (!p.ok) skipIfUnavailable(ctx, 'the C producer', unavailable(p.reason))
    return (producer = (p as { path: string }).path)
  }

  function start(binary: string, args: string[]): Producer {
    const p = startProducer(binary, args)
    producers.push(p)
    return p
  }

  async function created(what: string, options: Parameters<typeof ShmRegion.create>[1] = {}): Promise<ShmRegion> {
    const r = await ShmRegion.create(uniqueRegionName(what), options)
    regions.push(r)
    return r
  }

  it('a C producer and a TypeScript reader agree on the SHA-256 of 48 MiB', async function () {
    needProducer(this)
    const name = uniqueRegionName('digest')
    const p = start(producer, ['--create', '--block-size', String(MiB), '--slots', '8', name, 'data.bin', String(48 * MiB + 12345)])
    await p.begun
    const region = await ShmRegion.open(name)
    regions.push(region)
    const reader = await region.reader('data.bin', { timeoutMs: 5000 })
    expect(reader.sizeBytes).to.equal(48 * MiB + 12345)
    const got = await digestOf(reader)
    const want = await p.result
    expect(want.code, want.stderr).to.equal(0)
    expect(got).to.deep.equal({ sha256: want.sha256, bytes: 48 * MiB + 12345 })
    expect(reader.isDone()).to.equal(true)
    // The producer created the region, so its exit removed it.
    expect(fs.existsSync(`/dev/shm/escp-${name}`)).to.equal(false)
  })

  it('the C consumer calls: a C consumer gets the C producer\'s digest, and "producer died" when it is killed', async function () {
    needProducer(this)
    const c = cExample('consumer')
    if (!c.ok) skipIfUnavailable(this, 'the C consumer', unavailable(c.reason))
    const consumer = (c as { path: string }).path
    const region = await created('cc', { blockSizeBytes: 256 * 1024, slotCount: 4 })
    const p = start(producer, ['--seed', '5', region.name, 'whole', String(20 * MiB + 9)])
    await p.begun
    const got = await runToEnd(consumer, [region.name, 'whole'])
    expect(got.code, got.stderr).to.equal(0)
    expect(got.stdout.trim()).to.equal(`sha256 ${(await p.result).sha256} bytes ${20 * MiB + 9}`)
    const doomed = start(producer, [region.name, 'doomed', String(1024 * MiB)])
    await doomed.begun
    const pending = runToEnd(consumer, [region.name, 'doomed'])
    await sleep(200)
    doomed.child.kill('SIGKILL')
    const dead = await pending
    expect(dead.code).to.equal(1)
    expect(dead.stderr).to.contain('the stream was aborted: producer died')
  })

  it('a stream whose size is known only at its end arrives whole', async function () {
    needProducer(this)
    const region = await created('unknown', { blockSizeBytes: 64 * 1024, slotCount: 4 })
    const p = start(producer, ['--unknown-size', '--seed', '7', region.name, 'live', String(3 * MiB + 5)])
    await p.begun
    const reader = await region.reader('live', { timeoutMs: 5000 })
    const got = await digestOf(reader)
    const want = await p.result
    expect(want.code, want.stderr).to.equal(0)
    expect(got).to.deep.equal({ sha256: want.sha256, bytes: 3 * MiB + 5 })
    expect(reader.sizeBytes).to.equal(3 * MiB + 5)
  })

  it('two producers fill two streams of one region at once', async function () {
    needProducer(this)
    const region = await created('two', { blockSizeBytes: 256 * 1024, slotCount: 6 })
    const a = start(producer, ['--seed', '1', region.name, 'a', String(20 * MiB)])
    const b = start(producer, ['--seed', '2', region.name, 'b', String(12 * MiB + 1)])
    await Promise.all([a.begun, b.begun])
    const [ra, rb] = await Promise.all([region.reader('a', { timeoutMs: 5000 }), region.reader('b', { timeoutMs: 5000 })])
    const [ga, gb] = await Promise.all([digestOf(ra), digestOf(rb)])
    const [wa, wb] = await Promise.all([a.result, b.result])
    expect(ga).to.deep.equal({ sha256: wa.sha256, bytes: 20 * MiB })
    expect(gb).to.deep.equal({ sha256: wb.sha256, bytes: 12 * MiB + 1 })
    expect(wa.sha256).to.not.equal(wb.sha256)
    expect(region.slotsInUse()).to.equal(0)
  })

  it('a producer killed mid-stream aborts its stream with "producer died", not a hang', async function () {
    needProducer(this)
    const region = await created('killed', { blockSizeBytes: 64 * 1024, slotCount: 4 })
    const p = start(producer, [region.name, 'doomed', String(1024 * MiB)])
    await p.begun
    const reader = await region.reader('doomed', { timeoutMs: 5000 })
    for (let i = 0; i < 3; i++) {
      const block = await reader.next(5000)
      expect(block?.offset).to.equal(i * 64 * 1024)
      block?.release()
    }
    p.child.kill('SIGKILL')
    await p.result
    const started = Date.now()
    let err: EscpError | undefined
    try {
      // The slots it had filled are still delivered; then the stream fails.
      for (;;) {
        const block = await reader.next(10_000)
        if (block === null) break
        block.release()
      }
    } catch (e) {
      err = e as EscpError
    }
    expectShmError(err)
    expect(err?.message).to.match(/aborted: producer died/)
    expect(Date.now() - started).to.be.below(5000)
    expect(reader.state().error).to.equal('producer died')
    // Filled slots of the dead stream and those it had claimed are free again.
    expect(region.slotsInUse()).to.equal(0)
  })

  it('a slow consumer makes the producer wait, asleep, with memory bounded by the slots', async function () {
    needProducer(this)
    const blockBytes = 64 * 1024
    const slots = 4
    const region = await created('slow', { blockSizeBytes: blockBytes, slotCount: slots })
    const regionFileBytes = fs.statSync(`/dev/shm/escp-${region.name}`).size
    const p = start(producer, [region.name, 'slow', String(16 * MiB)])
    await p.begun
    const reader = await region.reader('slow', { timeoutMs: 5000 })
    // Nothing taken yet: the producer fills every slot, then waits.
    await sleep(200)
    const before = reader.state()
    expect(before.committedBytes).to.equal(slots * blockBytes)
    const ticks = cpuTicks(p.child.pid as number)
    await sleep(600)
    expect(reader.state().committedBytes, 'the producer went on without free slots').to.equal(slots * blockBytes)
    // Waiting is a futex sleep, not a spin: well under a tenth of the 600 ms in CPU time.
    expect(cpuTicks(p.child.pid as number) - ticks).to.be.at.most(5)
    let bytes = 0
    let maxAhead = 0
    for (let i = 0; ; i++) {
      const block = await reader.next(5000)
      if (block === null) break
      bytes += block.data.byteLength
      const s = reader.state()
      maxAhead = Math.max(maxAhead, s.committedBytes - s.releasedBytes)
      expect(region.slotsInUse()).to.be.at.most(slots)
      block.release()
      if (i % 16 === 0) await sleep(5)
    }
    expect(bytes).to.equal(16 * MiB)
    expect(maxAhead).to.be.at.most(slots * blockBytes)
    expect(fs.statSync(`/dev/shm/escp-${region.name}`).size).to.equal(regionFileBytes)
    expect((await p.result).code).to.equal(0)
  })

  it('a TypeScript writer waits for a free slot, and times out when none comes', async function () {
    const region = await created('ts', { blockSizeBytes: 4096, slotCount: 2 })
    const w = region.writer('s', { sizeBytes: 3 * 4096 })
    const reader = await region.reader('s')
    for (let i = 0; i < 2; i++) {
      const slot = await w.claim(1000)
      slot.data.fill(i + 1)
      w.commit(slot, i * 4096, 4096)
    }
    let err: EscpError | undefined
    const t0 = Date.now()
    await w.claim(150).catch((e: EscpError) => (err = e))
    expectShmError(err)
    expect(err?.errno).to.equal('ETIMEDOUT')
    expect(Date.now() - t0).to.be.within(100, 2000)
    // A release wakes the waiting writer.
    const waiting = w.claim(5000)
    const first = await reader.next(1000)
    expect(first?.data[0]).to.equal(1)
    first?.release()
    const slot = await waiting
    slot.data.fill(3)
    w.commit(slot, 2 * 4096, 4096)
    w.end()
    const rest: number[] = []
    for await (const block of reader) rest.push(block.data[0], block.data.byteLength)
    expect(rest).to.deep.equal([2, 4096, 3, 4096])
    await w.waitDone(1000)
  })

  it('out-of-order writes never fill the slots that an in-order reader needs next', async function () {
    const bs = 4096
    const region = await created('order', { blockSizeBytes: bs, slotCount: 4 })
    const w = region.writer('s', { sizeBytes: 8 * bs })
    const reader = await region.reader('s')
    // Blocks 7..1 are written first, block 0 last: without the window, 1-4 would take every slot.
    const writes = [7, 6, 5, 4, 3, 2, 1].map((i) => w.write(Buffer.alloc(bs, i), i * bs, 5000))
    await sleep(100)
    expect(region.slotsInUse()).to.be.at.most(3)
    writes.push(w.write(Buffer.alloc(bs, 0), 0, 5000))
    const seen: number[] = []
    for (let i = 0; i < 8; i++) {
      const block = await reader.next(2000)
      seen.push(block?.data[0] ?? -1)
      block?.release()
    }
    await Promise.all(writes)
    w.end()
    expect(await reader.next(1000)).to.equal(null)
    expect(seen).to.deep.equal([0, 1, 2, 3, 4, 5, 6, 7])
  })

  it('refuses bad names, misplaced blocks and a stream that ends short, with ESCP_ERR_SHM', async function () {
    for (const bad of ['', '../x', '.hidden', 'a/b', 'x'.repeat(101)]) {
      await ShmRegion.create(bad).then(
        () => expect.fail(`created '${bad}'`),
        (e) => expectShmError(e),
      )
    }
    await ShmRegion.create(uniqueRegionName('bs'), { blockSizeBytes: 5000 }).then(
      () => expect.fail('took a block size that is not a multiple of 4096'),
      (e) => expectShmError(e),
    )
    await ShmRegion.open(uniqueRegionName('missing')).then(
      () => expect.fail('opened a region that does not exist'),
      (e: EscpError) => {
        expectShmError(e)
        expect(e.errno).to.equal('ENOENT')
      },
    )
    const region = await created('bad', { blockSizeBytes: 4096, slotCount: 2 })
    const other = await ShmRegion.create(region.name).catch((e: EscpError) => e)
    expectShmError(other)
    expect((other as EscpError).errno).to.equal('EEXIST')
    const w = region.writer('s', { sizeBytes: 10_000 })
    expect(() => region.writer('s')).to.throw(/EEXIST/)
    const slot = await w.claim(1000)
    expect(() => w.commit(slot, 100, 4096)).to.throw(/ESCP_ERR_SHM.*EINVAL/) // not on a block boundary
    expect(() => w.commit(slot, 0, 5000)).to.throw(/EINVAL/) // longer than a block
    expect(() => w.commit(slot, 8192, 4096)).to.throw(/EINVAL/) // past the declared size
    w.commit(slot, 0, 4096)
    expect(() => w.end()).to.throw(/EINVAL/) // 5904 bytes missing
    w.abort('gave up')
    const reader = await region.reader('s')
    const err = await reader.next(1000).catch((e: EscpError) => e)
    expectShmError(err)
    expect((err as Error).message).to.match(/aborted: gave up/)
    expect(region.slotsInUse()).to.equal(0)
  })

  it('removes the region when its creator closes it, even with slot views still alive', async function () {
    const region = await ShmRegion.create(uniqueRegionName('close'), { blockSizeBytes: 4096, slotCount: 2 })
    const file = `/dev/shm/escp-${region.name}`
    expect(fs.existsSync(file)).to.equal(true)
    const w = region.writer('s', { sizeBytes: 4096 })
    const slot = await w.claim(1000)
    region.close()
    expect(fs.existsSync(file)).to.equal(false)
    // This thread's mapping stays valid for views made before the close.
    slot.data[0] = 42
    expect(slot.data[0]).to.equal(42)
    expect(() => region.slotsInUse()).to.throw(/closed/)
  })

  it('a closed region ends its waits instead of leaving them hanging', async function () {
    const region = await ShmRegion.create(uniqueRegionName('cancel'), { blockSizeBytes: 4096, slotCount: 1 })
    const w = region.writer('s')
    const reader = await region.reader('s')
    const waiting = reader.next()
    await sleep(50)
    region.close()
    const err = await waiting.catch((e: EscpError) => e)
    expectShmError(err)
    expect((err as Error).message).to.match(/cancel/)
    void w
    // Nothing is left waiting on a native thread, and the handle is gone.
    const load = loadBinding()
    if (load.ok) expect(load.binding.stats().inFlight).to.equal(0)
  })
})
