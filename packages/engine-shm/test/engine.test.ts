// The 'shm' engine in real transfers through the CLI (loopback: a child escp receives): a
// region's stream sent as a file (shm::posix), a file delivered into a consumer region
// (posix::shm), a producer that dies mid-transfer, and sources the engine must refuse.
import { spawn } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { expect } from 'chai'
import { AVAILABLE, loadPlugins, unavailable, withDefaults } from '@escp/core'
import type { PluginSet } from '@escp/core'
import { skipIfUnavailable } from '@escp/core/testing'
import { ShmRegion, parseShmSource } from '../src'
import { loadBinding } from '../src/binding'
import { HostileSender, within } from '../../../test/helpers/hostile-sender'
import { childrenOf } from '../../../test/helpers/processes'
import { pullSpeaking } from '../../../test/helpers/pull'
import { cProducer, sleep, startProducer, uniqueRegionName } from './helpers'
import type { Producer } from './helpers'

const MiB = 1024 * 1024
const CLI = path.join(__dirname, '../../cli/bin/run.js')

interface CliResult {
  code: number | null
  stdout: string
  stderr: string
}

/** How long a copy of these tests may take before it is stopped and its state reported. */
const STUCK_MS = 25_000

function escp(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  // Each escp process writes a diagnostic report (JavaScript stack, libuv handles) on SIGUSR2.
  const reports = fs.mkdtempSync(path.join(os.tmpdir(), 'escp-shm-reports-'))
  const options = `--report-on-signal --report-signal=SIGUSR2 --report-directory=${reports}`
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, NODE_OPTIONS: options, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s))
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s))
    // A copy that does not end is stopped with what each of its processes was doing, for the failure to show.
    const stuck = setTimeout(() => {
      const pids = [child.pid as number, ...childrenOf(child.pid as number)]
      for (const pid of pids) process.kill(pid, 'SIGUSR2')
      setTimeout(() => {
        stderr += `\n[stopped after ${STUCK_MS} ms]\n${reportsIn(reports)}`
        for (const pid of pids) process.kill(pid, 'SIGKILL')
      }, 2000)
    }, STUCK_MS)
    child.once('close', (code) => {
      clearTimeout(stuck)
      fs.rmSync(reports, { recursive: true, force: true })
      resolve({ code, stdout, stderr })
    })
  })
}

/** Each report's JavaScript stack and active handles, short. */
function reportsIn(dir: string): string {
  return fs
    .readdirSync(dir)
    .map((f) => {
      const r = JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')) as { header: { processId: number }; javascriptStack?: { message: string; stack?: string[] }; libuv?: Array<{ type: string; is_active: boolean }> }
      const handles = (r.libuv ?? []).filter((h) => h.is_active).map((h) => h.type)
      return `pid ${r.header.processId}: ${r.javascriptStack?.message ?? ''} ${(r.javascriptStack?.stack ?? []).slice(0, 8).join(' | ')}; active handles: ${handles.join(', ')}`
    })
    .join('\n')
}

function sha256File(file: string): string {
  return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex')
}

/** Pulls `source` (shm) from a loopback server into `destination` (node-fs), this side speaking protocol 1.`minor`. */
function pullShmSpeaking(set: PluginSet, minor: number, source: string, destination: string) {
  const o = withDefaults({ streams: 2, port: 31000 + (process.pid % 500) * 8 + minor * 3, portRange: 3 })
  return pullSpeaking(set, o, minor, source, destination, { server: 'shm', client: 'node-fs' }).then((p) => p.result)
}
describe("shm engine in a transfer ('escp --ioengine shm::posix' and 'posix::shm')", function () {
  let dir: string
  const regions: ShmRegion[] = []
  const producers: Producer[] = []

  before(function () {
    const load = loadBinding()
    skipIfUnavailable(this, "engine 'shm'", load.ok ? AVAILABLE : unavailable(load.reason))
  })

  beforeEach(function () {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'escp-shm-engine-'))
  })

  afterEach(function () {
    // A producer whose consumer never came would wait for a free slot for good.
    for (const p of producers.splice(0)) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGTERM')
    for (const r of regions.splice(0)) r.close()
    fs.rmSync(dir, { recursive: true, force: true })
  })

  function start(binary: string, args: string[]): Producer {
    const p = startProducer(binary, args)
    producers.push(p)
    return p
  }

  /** A producer of a 64 MiB stream `stream`, once it has filled every one of the region's 4 slots. */
  async function fillEverySlot(region: ShmRegion, producer: string, name: string, stream: string): Promise<Producer> {
    const p = start(producer, [name, stream, String(64 * MiB)])
    await p.begun
    for (let waited = 0; region.slotsInUse() < 4 && waited < 10_000; waited += 20) await new Promise((resolve) => setTimeout(resolve, 20))
    expect(region.slotsInUse(), `slots the producer of ${stream} filled`).to.equal(4)
    return p
  }

  function producerBinary(ctx: Mocha.Context): string {
    const p = cProducer()
    if (!p.ok) skipIfUnavailable(ctx, 'the C producer', unavailable(p.reason))
    return (p as { path: string }).path
  }

  it('names a stream /dev/shm/escp-REGION/STREAM', function () {
    expect(parseShmSource('/dev/shm/escp-lab/run-1.dat')).to.deep.equal({ region: 'lab', stream: 'run-1.dat' })
    expect(parseShmSource('/dev/shm/escp-lab/')).to.equal(null)
    expect(parseShmSource('/dev/shm/escp-lab')).to.equal(null)
    expect(parseShmSource('/tmp/escp-lab/x')).to.equal(null)
  })

  it('sends a stream of a region as a file, with the digest the producer computed', async function () {
    const producer = producerBinary(this)
    const name = uniqueRegionName('send')
    const size = 40 * MiB + 777
    const p = start(producer, ['--create', '--slots', '8', name, 'capture.dat', String(size)])
    await p.begun
    const out = path.join(dir, 'out')
    fs.mkdirSync(out)
    // A file beside the stream is read from disk as usual.
    const notes = path.join(dir, 'notes.txt')
    fs.writeFileSync(notes, 'run 1: 40 MiB\n')
    const r = await escp(['--ioengine', 'shm::posix', '-t', '2', `/dev/shm/escp-${name}/capture.dat`, notes, out])
    expect(r.code, r.stderr).to.equal(0)
    expect(fs.readFileSync(path.join(out, 'notes.txt'), 'utf8')).to.equal('run 1: 40 MiB\n')
    const want = await p.result
    expect(want.code, want.stderr).to.equal(0)
    expect(fs.statSync(path.join(out, 'capture.dat')).size).to.equal(size)
    expect(sha256File(path.join(out, 'capture.dat'))).to.equal(want.sha256)
    // The producer exits once escp has taken everything, and its region goes with it.
    expect(fs.existsSync(`/dev/shm/escp-${name}`)).to.equal(false)
  })

  it('sends a stream of unknown size while its producer is still writing it, and one that has ended, with their digests', async function () {
    const producer = producerBinary(this)
    const name = uniqueRegionName('unknown')
    const region = await ShmRegion.create(name, { slotCount: 8 })
    regions.push(region)
    // 3 MiB fits the slots: this producer ends its stream before escp starts.
    const ended = start(producer, ['--unknown-size', '--seed', '3', name, 'ended.dat', String(3 * MiB + 1)])
    await ended.ended
    // The other is written here, block by block, while escp sends it.
    const live = region.writer('live.dat')
    const data = crypto.randomBytes(12 * MiB + 4321)
    const out = path.join(dir, 'out')
    fs.mkdirSync(out)
    let exited = false
    const transfer = escp(['--ioengine', 'shm::posix', '-t', '2', `/dev/shm/escp-${name}/ended.dat`, `/dev/shm/escp-${name}/live.dat`, out]).finally(() => (exited = true))
    for (let offset = 0; offset < data.length; offset += MiB) {
      await live.write(data.subarray(offset, offset + MiB), offset, 30_000)
      if (offset === 6 * MiB) {
        // Half-way, and paused: escp waits for the rest, and nothing is under the file's name yet.
        await sleep(300)
        expect(exited, 'escp ended before the stream did').to.equal(false)
        expect(fs.existsSync(path.join(out, 'live.dat'))).to.equal(false)
      }
    }
    live.end()
    const r = await transfer
    expect(r.code, r.stderr).to.equal(0)
    await live.waitDone(5000)
    expect(fs.statSync(path.join(out, 'live.dat')).size).to.equal(data.length)
    expect(sha256File(path.join(out, 'live.dat'))).to.equal(crypto.createHash('sha256').update(data).digest('hex'))
    expect(sha256File(path.join(out, 'ended.dat'))).to.equal((await ended.result).sha256)
    expect(fs.readdirSync(out).sort()).to.deep.equal(['ended.dat', 'live.dat'])
  })

  it('fails a stream of unknown size that is aborted before its end: the session reports it and exits 1, the other file arrives', async function () {
    const producer = producerBinary(this)
    const name = uniqueRegionName('abort')
    const region = await ShmRegion.create(name, { slotCount: 4 })
    regions.push(region)
    const fine = start(producer, ['--seed', '5', name, 'fine.dat', String(2 * MiB + 5)])
    await fine.begun
    const live = region.writer('cut.dat')
    const out = path.join(dir, 'out')
    fs.mkdirSync(out)
    const transfer = escp(['--ioengine', 'shm::posix', '-t', '2', `/dev/shm/escp-${name}/fine.dat`, `/dev/shm/escp-${name}/cut.dat`, out])
    for (let offset = 0; offset < 5 * MiB; offset += MiB) await live.write(crypto.randomBytes(MiB), offset, 30_000)
    await sleep(200)
    live.abort('the instrument stopped')
    const r = await transfer
    expect(r.code, `${r.stdout}\n${r.stderr}`).to.equal(1)
    expect(r.stderr).to.match(/cut\.dat/)
    expect(r.stderr).to.match(/ESCP_ERR_SHM.*aborted: the instrument stopped/)
    expect(sha256File(path.join(out, 'fine.dat'))).to.equal((await fine.result).sha256)
    // Neither under its name nor as a temporary file.
    expect(fs.readdirSync(out)).to.deep.equal(['fine.dat'])
  })

  it('refuses a stream of unknown size to a receiver of protocol 1.1, and sends it to one of 1.2', async function () {
    const name = uniqueRegionName('old')
    const region = await ShmRegion.create(name, { slotCount: 4 })
    regions.push(region)
    const set = await loadPlugins({ plugins: ['@escp/engine-shm'] })
    const source = `/dev/shm/escp-${name}/open.dat`
    const data = crypto.randomBytes(MiB + 77)
    for (const minor of [1, 2]) {
      const w = region.writer('open.dat')
      const out = path.join(dir, `out-1.${minor}`)
      fs.mkdirSync(out)
      // The receiver is this process, speaking 1.`minor`; the sender is the server it starts.
      const pulled = pullShmSpeaking(set, minor, source, out)
      if (minor === 1) {
        const r = await pulled
        expect(r.entries).to.equal(0)
        expect(r.failures.map((f) => f.error.code)).to.deep.equal(['ESCP_ERR_SOURCE'])
        expect(r.failures[0].error.message).to.match(/open\.dat.*its size is known only when it ends, and the receiver speaks protocol 1\.1/)
        expect(fs.readdirSync(out)).to.deep.equal([])
        w.abort('refused')
      } else {
        await w.write(data.subarray(0, MiB), 0, 30_000)
        await w.write(data.subarray(MiB), MiB, 30_000)
        w.end()
        const r = await pulled
        expect(r.failures).to.deep.equal([])
        expect(r.entriesOk).to.equal(1)
        expect(fs.readFileSync(path.join(out, 'open.dat')).equals(data)).to.equal(true)
      }
    }
  })
  it('fails the file, not the session, when its producer dies mid-transfer', async function () {
    const producer = producerBinary(this)
    const name = uniqueRegionName('die')
    const region = await ShmRegion.create(name, { slotCount: 4 })
    regions.push(region)
    const dying = start(producer, [name, 'dying.dat', String(2048 * MiB)])
    const fine = start(producer, ['--seed', '9', name, 'fine.dat', String(3 * MiB)])
    await Promise.all([dying.begun, fine.begun])
    const out = path.join(dir, 'out')
    fs.mkdirSync(out)
    const transfer = escp(['--ioengine', 'shm::posix', `/dev/shm/escp-${name}/fine.dat`, `/dev/shm/escp-${name}/dying.dat`, out])
    // Let blocks flow, then kill the producer while escp waits for its next one.
    await new Promise((resolve) => setTimeout(resolve, 300))
    dying.child.kill('SIGKILL')
    const r = await transfer
    expect(r.code, `${r.stdout}\n${r.stderr}`).to.equal(1)
    expect(r.stderr).to.match(/dying\.dat/)
    expect(r.stderr).to.match(/ESCP_ERR_SHM.*producer died/)
    // The other stream arrived whole; the failed file never appears under its name.
    expect(sha256File(path.join(out, 'fine.dat'))).to.equal((await fine.result).sha256)
    expect(fs.existsSync(path.join(out, 'dying.dat'))).to.equal(false)
    expect(fs.readdirSync(out)).to.deep.equal(['fine.dat'])
  })

  it('fails the file of a producer that died holding every slot, and the other stream, read first, still arrives', async function () {
    const producer = producerBinary(this)
    const name = uniqueRegionName('hold')
    const region = await ShmRegion.create(name, { slotCount: 4 })
    regions.push(region)
    // Every slot filled with its blocks, none taken: the other stream's producer has none to fill.
    const dying = await fillEverySlot(region, producer, name, 'dying.dat')
    dying.child.kill('SIGKILL')
    await dying.result
    const fine = start(producer, ['--seed', '9', name, 'fine.dat', String(3 * MiB)])
    await fine.begun
    const out = path.join(dir, 'out')
    fs.mkdirSync(out)
    const r = await escp(['--ioengine', 'shm::posix', `/dev/shm/escp-${name}/fine.dat`, `/dev/shm/escp-${name}/dying.dat`, out])
    expect(r.code, `${r.stdout}\n${r.stderr}`).to.equal(1)
    expect(r.stderr).to.match(/dying\.dat.*ESCP_ERR_SHM.*producer died/)
    expect(sha256File(path.join(out, 'fine.dat'))).to.equal((await fine.result).sha256)
    expect(fs.readdirSync(out)).to.deep.equal(['fine.dat'])
  })

  it('sends a stream read first while the producer of one read after it has filled every slot', async function () {
    const producer = producerBinary(this)
    const name = uniqueRegionName('full')
    const region = await ShmRegion.create(name, { slotCount: 4 })
    regions.push(region)
    const big = await fillEverySlot(region, producer, name, 'big.dat')
    const small = start(producer, ['--seed', '9', name, 'small.dat', String(3 * MiB)])
    await small.begun
    const out = path.join(dir, 'out')
    fs.mkdirSync(out)
    // One data stream: the big stream's blocks, read while the small one's first block waits
    // for a slot, must not hold back the small one (they once did, and the copy never ended).
    const r = await escp(['--ioengine', 'shm::posix', '-t', '1', `/dev/shm/escp-${name}/small.dat`, `/dev/shm/escp-${name}/big.dat`, out])
    expect(r.code, `${r.stdout}\n${r.stderr}`).to.equal(0)
    expect(sha256File(path.join(out, 'small.dat'))).to.equal((await small.result).sha256)
    expect(sha256File(path.join(out, 'big.dat'))).to.equal((await big.result).sha256)
  })

  it('delivers a received file into a consumer region as a stream of the same name', async function () {
    const name = uniqueRegionName('recv')
    const region = await ShmRegion.create(name, { slotCount: 4 })
    regions.push(region)
    const src = path.join(dir, 'payload.bin')
    // Many more blocks than slots, arriving out of order over four streams.
    const data = crypto.randomBytes(40 * MiB + 3)
    fs.writeFileSync(src, data)
    const consumed = (async () => {
      const reader = await region.reader('payload.bin', { timeoutMs: 30_000 })
      const sha = crypto.createHash('sha256')
      let bytes = 0
      let maxInUse = 0
      for await (const block of reader) {
        sha.update(block.data)
        bytes += block.data.byteLength
        maxInUse = Math.max(maxInUse, region.slotsInUse())
        // A slow consumer: escp's writes wait for free slots.
        await new Promise((resolve) => setTimeout(resolve, 5))
      }
      return { sha256: sha.digest('hex'), bytes, maxInUse }
    })()
    const dest = path.join(dir, 'unused')
    fs.mkdirSync(dest)
    const r = await escp(['--ioengine', 'posix::shm', '-t', '4', src, dest], { ESCP_SHM_REGION: name })
    expect(r.code, r.stderr).to.equal(0)
    const got = await consumed
    expect(got.sha256).to.equal(crypto.createHash('sha256').update(data).digest('hex'))
    expect(got.bytes).to.equal(data.length)
    expect(got.maxInUse).to.be.at.most(4)
    // Nothing was written to the destination directory.
    expect(fs.readdirSync(dest)).to.deep.equal([])
  })

  it('carries a stream of unknown size from one region into another while it is written (shm::shm), and an aborted one as aborted', async function () {
    const source = await ShmRegion.create(uniqueRegionName('from'), { slotCount: 4 })
    const sink = await ShmRegion.create(uniqueRegionName('into'), { slotCount: 4 })
    regions.push(source, sink)
    const data = crypto.randomBytes(9 * MiB + 123)
    const consume = async (stream: string) => {
      const reader = await sink.reader(stream, { timeoutMs: 30_000 })
      const sha = crypto.createHash('sha256')
      let bytes = 0
      for await (const block of reader) {
        sha.update(block.data)
        bytes += block.data.byteLength
      }
      return { sha256: sha.digest('hex'), bytes, size: reader.sizeBytes }
    }
    const consumed = consume('live.dat')
    const abortedAtSink = consume('cut.dat').then(
      () => 'ended',
      (err: { code?: string; message: string }) => `${err.code}: ${err.message}`,
    )
    const live = source.writer('live.dat')
    const cut = source.writer('cut.dat')
    const dest = path.join(dir, 'unused')
    fs.mkdirSync(dest)
    const transfer = escp(['--ioengine', 'shm::shm', '-t', '2', `/dev/shm/escp-${source.name}/live.dat`, `/dev/shm/escp-${source.name}/cut.dat`, dest], { ESCP_SHM_REGION: sink.name })
    await cut.write(data.subarray(0, MiB), 0, 30_000)
    for (let offset = 0; offset < data.length; offset += MiB) await live.write(data.subarray(offset, offset + MiB), offset, 30_000)
    live.end()
    cut.abort('the instrument stopped')
    const r = await transfer
    expect(r.code, r.stderr).to.equal(1)
    expect(r.stderr).to.match(/cut\.dat[^\n]*the instrument stopped/)
    expect(await consumed).to.deep.equal({ sha256: crypto.createHash('sha256').update(data).digest('hex'), bytes: data.length, size: data.length })
    expect(await abortedAtSink).to.match(/^ESCP_ERR_SHM: .*aborted/)
    expect(fs.readdirSync(dest)).to.deep.equal([])
  })

  it('ends a received stream only once escp has verified its digest, and aborts it when the digest differs', async function () {
    const KiB = 1024
    const region = await ShmRegion.create(uniqueRegionName('verify'), { blockSizeBytes: 64 * KiB, slotCount: 4 })
    regions.push(region)
    const set = await loadPlugins({ plugins: [] })
    const blocks = [crypto.randomBytes(64 * KiB), crypto.randomBytes(1000)]
    const size = 64 * KiB + 1000
    for (const [i, good] of [true, false].entries()) {
      const name = good ? 'good.bin' : 'bad.bin'
      let received = 0
      const consumed = (async () => {
        const reader = await region.reader(name, { timeoutMs: 30_000 })
        for await (const block of reader) received += block.data.byteLength
        return 'ended'
      })().catch((err: { code?: string; message: string }) => `${err.code}: ${err.message}`)
      let settled = false
      void consumed.finally(() => (settled = true))
      const port = 33000 + (process.pid % 400) * 10 + i * 4
      // The sender here is the test, saying what it likes; the real server receives with shm.
      const peer = await HostileSender.start(set, dir, { port, portRange: 4, blockSizeBytes: 64 * KiB }, undefined, { engine: 'shm', env: { ESCP_PLUGINS: path.join(__dirname, '..'), ESCP_SHM_REGION: region.name } })
      await peer.announce([{ id: 0n, path: name, size: BigInt(size) }])
      await peer.block(0n, 0, blocks[0], 0)
      await peer.block(0n, 64 * KiB, blocks[1], 1)
      for (let waited = 0; received < size && waited < 5000; waited += 20) await sleep(20)
      await sleep(200)
      expect(received, 'the consumer has every byte').to.equal(size)
      expect(settled, 'the stream ended before escp had the digest').to.equal(false)
      await peer.done([{ id: 0n, size: BigInt(size), blocks: 2n, digest: peer.digestOf(good ? blocks : [blocks[1], blocks[0]]) }])
      await peer.sessionEnd(1)
      await within(peer.finish(), 15_000, 'the end of the session')
      expect(peer.verdicts.get(0n)?.ok).to.equal(good)
      if (good) expect(await consumed).to.equal('ended')
      else expect(await consumed).to.match(/^ESCP_ERR_SHM: .*aborted/)
    }
    await HostileSender.killAll()
  })

  it('aborts the streams of unfinished files when the session fails, so no consumer waits on', async function () {
    const KiB = 1024
    const region = await ShmRegion.create(uniqueRegionName('broken'), { blockSizeBytes: 64 * KiB, slotCount: 4 })
    regions.push(region)
    const set = await loadPlugins({ plugins: [] })
    const progress = new Map<string, number>()
    const consume = (name: string) =>
      (async () => {
        const reader = await region.reader(name, { timeoutMs: 30_000 })
        for await (const block of reader) progress.set(name, (progress.get(name) ?? 0) + block.data.byteLength)
        return 'ended'
      })().catch((err: { code?: string; message: string }) => `${err.code}: ${err.message}`)
    const known = consume('known.bin')
    const unknown = consume('unknown.bin')
    const port = 33000 + (process.pid % 400) * 10 + 8
    const peer = await HostileSender.start(set, dir, { port, portRange: 2, blockSizeBytes: 64 * KiB }, undefined, { engine: 'shm', env: { ESCP_PLUGINS: path.join(__dirname, '..'), ESCP_SHM_REGION: region.name } })
    await peer.announce([
      { id: 0n, path: 'known.bin', size: BigInt(128 * KiB) },
      { id: 1n, path: 'unknown.bin', sizeAtEnd: true },
    ])
    await peer.block(0n, 0, crypto.randomBytes(64 * KiB), 0)
    await peer.block(1n, 0, crypto.randomBytes(64 * KiB), 1)
    for (let waited = 0; (progress.get('known.bin') ?? 0) + (progress.get('unknown.bin') ?? 0) < 128 * KiB && waited < 5000; waited += 20) await sleep(20)
    // The sender vanishes mid-file: the server's session fails.
    await peer.close()
    const outcomes = await within(Promise.all([known, unknown]), 10_000, 'the consumers to learn that the streams were given up')
    for (const o of outcomes) expect(o).to.match(/^ESCP_ERR_SHM: .*aborted/)
  })

  it('delivers a received empty file into a consumer region as a stream that begins and ends empty', async function () {
    const name = uniqueRegionName('empty')
    const region = await ShmRegion.create(name, { slotCount: 2 })
    regions.push(region)
    const src = path.join(dir, 'empty.bin')
    fs.writeFileSync(src, '')
    const consumed = (async () => {
      const reader = await region.reader('empty.bin', { timeoutMs: 30_000 })
      let bytes = 0
      for await (const block of reader) bytes += block.data.byteLength
      return { bytes, size: reader.sizeBytes }
    })()
    const dest = path.join(dir, 'unused')
    fs.mkdirSync(dest)
    const r = await escp(['--ioengine', 'posix::shm', src, dest], { ESCP_SHM_REGION: name })
    expect(r.code, r.stderr).to.equal(0)
    expect(await consumed).to.deep.equal({ bytes: 0, size: 0 })
    expect(fs.readdirSync(dest)).to.deep.equal([])
  })

  it('refuses a region whose blocks differ from the transfer\'s, naming the flag that fixes it', async function () {
    const name = uniqueRegionName('bs')
    const region = await ShmRegion.create(name, { blockSizeBytes: 64 * 1024, slotCount: 4 })
    regions.push(region)
    const w = region.writer('small.dat', { sizeBytes: 200 * 1024 })
    for (let off = 0; off < 200 * 1024; off += 64 * 1024) await w.write(Buffer.alloc(Math.min(64 * 1024, 200 * 1024 - off), 7), off, 1000)
    w.end()
    const out = path.join(dir, 'out')
    fs.mkdirSync(out)
    const r = await escp(['--ioengine', 'shm::posix', `/dev/shm/escp-${name}/small.dat`, out])
    expect(r.code).to.equal(1)
    expect(r.stderr).to.match(/ESCP_ERR_SHM.*--blocksize 65536/)
    const ok = await escp(['--ioengine', 'shm::posix', '--blocksize', '64K', `/dev/shm/escp-${name}/small.dat`, out])
    expect(ok.code, ok.stderr).to.equal(0)
    expect(fs.readFileSync(path.join(out, 'small.dat')).equals(Buffer.alloc(200 * 1024, 7))).to.equal(true)
  })

  it('refuses a stream that another process is already consuming, naming it', async function () {
    const name = uniqueRegionName('busy')
    const region = await ShmRegion.create(name, { blockSizeBytes: 64 * 1024, slotCount: 2 })
    regions.push(region)
    region.writer('taken.dat', { sizeBytes: 100 })
    await region.reader('taken.dat')
    const out = path.join(dir, 'out')
    fs.mkdirSync(out)
    const r = await escp(['--ioengine', 'shm::posix', `/dev/shm/escp-${name}/taken.dat`, out])
    expect(r.code).to.equal(1)
    expect(r.stderr).to.contain(`another process (pid ${process.pid}) is its consumer`)
  })

  it('reports a stream that never began, and a region that does not exist, by name', async function () {
    const name = uniqueRegionName('none')
    const region = await ShmRegion.create(name, { blockSizeBytes: 64 * 1024, slotCount: 2 })
    regions.push(region)
    const out = path.join(dir, 'out')
    fs.mkdirSync(out)
    const r = await escp(['--ioengine', 'shm::posix', `/dev/shm/escp-${name}/nothing`, `/dev/shm/escp-${uniqueRegionName('gone')}/x`, out], { ESCP_SHM_ATTACH_MS: '200' })
    expect(r.code).to.equal(1)
    expect(r.stderr).to.match(/ESCP_ERR_SHM: shared memory '\/dev\/shm\/escp-test-none-[^']+\/nothing': no stream of that name began within 200 ms/)
    expect(r.stderr).to.match(/ESCP_ERR_SHM: .*region 'test-gone-[^']+'.*ENOENT/)
    expect(fs.readdirSync(out)).to.deep.equal([])
  })
})
