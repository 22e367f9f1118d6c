// Loopback copies through the posix engine: what it writes, how (uncached or O_DIRECT), and what
// it gives back (descriptors, aligned memory) when a transfer ends or is cut off.
import fs from 'node:fs'
import path from 'node:path'
import { expect } from 'chai'
import { copy, push, spawnLoopbackServer } from '@escp/core'
import type { TransferOptions } from '@escp/core'
import { PosixEngine } from '@escp/engine-posix'
import { pageCacheBytes, skipBecause, skipIfUnavailable, uncachedWriteRefusal } from '@escp/core/testing'
import { describeTree, leftoverTemps, sha256File, tempDir, writeRandom } from './helpers/trees'
import { childrenOf } from './helpers/processes'

const MiB = 1024 * 1024
const POSIX = require.resolve('@escp/engine-posix')
let nextPort = 27000 + (process.pid % 1000) * 10

function opts(extra: Partial<TransferOptions> = {}): Partial<TransferOptions> {
  nextPort += 10
  return { port: nextPort, portRange: 10, plugins: [POSIX], engine: 'posix', ...extra }
}

/** Kills (SIGKILL: no orderly stop, as a crash) this process's loopback children. */
function killLoopbackChildren(): void {
  for (const pid of childrenOf(process.pid)) {
    try {
      if (fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('server-main')) process.kill(pid, 'SIGKILL')
    } catch {
      // It exited while we looked.
    }
  }
}

/** The engine's process-wide counters once the stream workers of this process have gone. */
async function settledStats(engine: PosixEngine, want: { openFiles: number; alignedBuffers: number }) {
  const deadline = Date.now() + 5000
  let s = engine.stats()
  while ((s.openFiles !== want.openFiles || s.alignedBuffers !== want.alignedBuffers) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50))
    s = engine.stats()
  }
  return s
}

describe('loopback transfer with the posix engine', function () {
  this.timeout(120_000)
  let work: string
  const engine = new PosixEngine()

  before(function () {
    skipIfUnavailable(this, "engine 'posix'", engine.available())
  })
  beforeEach(function () {
    work = tempDir('xfer-posix')
  })
  afterEach(function () {
    fs.rmSync(work, { recursive: true, force: true })
  })

  it('copies a tree with O_DIRECT, tails of every alignment included, and gives back every descriptor and buffer', async function () {
    const src = path.join(work, 'src')
    // Files of one block are written buffered; those of several end in an O_DIRECT tail.
    for (const size of [0, 1, 4095, 4096, 4097, MiB - 1, MiB, MiB + 1, 2 * MiB + 4095, 2 * MiB + 4097, 3 * MiB + 12345]) writeRandom(path.join(src, `f${size}`), size)
    const before = engine.stats()
    const dst = path.join(work, 'dst')
    // Not uncached, which the receiver would take over O_DIRECT where the file system has it.
    const summary = await copy({ sources: [src], destination: dst, options: opts({ recursive: true, preserve: true, streams: 2, pluginOptions: { uncachedWrites: false } }) })
    expect(summary.ok, JSON.stringify(summary.failures)).to.equal(true)
    expect(describeTree(dst, true)).to.deep.equal(describeTree(src, true))
    expect(leftoverTemps(dst)).to.deep.equal([])
    expect(await settledStats(engine, before)).to.deep.include({ openFiles: before.openFiles, alignedBuffers: before.alignedBuffers })
  })

  it('writes uncached where the destination takes it, and with O_DIRECT when told not to, as the receiver\'s log says', async function () {
    const refusal = uncachedWriteRefusal(work)
    if (refusal) return skipBecause(this, refusal)
    const file = path.join(work, 'big')
    writeRandom(file, 24 * MiB + 5)
    const writesOf = (log: string) => fs.readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { msg: string; writes?: string }).find((l) => l.msg === 'session started')?.writes
    for (const [uncachedWrites, expected] of [[true, 'uncached'], [false, 'O_DIRECT']] as const) {
      const dst = path.join(work, `copy-${expected}`)
      const log = path.join(work, `${expected}.log`)
      const summary = await copy({ sources: [file], destination: dst, options: opts({ serverLogFile: log, pluginOptions: { uncachedWrites } }) })
      expect(summary.ok, JSON.stringify(summary.failures)).to.equal(true)
      expect(writesOf(log), 'the receiver\'s writes').to.equal(expected)
      // Neither way leaves the copy in the page cache.
      const resident = pageCacheBytes(dst)
      if (typeof resident === 'number') expect(resident, `${expected}: bytes of the copy in the page cache`).to.be.below(2 * MiB)
      expect(sha256File(dst)).to.equal(sha256File(file))
    }
  })

  it('mixes engines: posix sends, node-fs receives, and the other way round', async function () {
    const file = path.join(work, 'mixed')
    writeRandom(file, 5 * MiB + 3)
    for (const engineSpec of ['posix::node-fs', 'node-fs::posix']) {
      const dst = path.join(work, engineSpec.replace('::', '-'))
      const summary = await copy({ sources: [file], destination: dst, options: opts({ engine: engineSpec }) })
      expect(summary.ok, JSON.stringify(summary.failures)).to.equal(true)
      expect(sha256File(dst)).to.equal(sha256File(file))
    }
  })

  it('keeps records in the order they were sealed when paced, with small blocks completing out of order', async function () {
    const file = path.join(work, 'paced')
    writeRandom(file, 24 * MiB)
    const dst = path.join(work, 'paced-copy')
    const summary = await copy({ sources: [file], destination: dst, options: opts({ blockSizeBytes: 64 * 1024, limitBytesPerSec: 48 * MiB }) })
    expect(summary.ok, JSON.stringify(summary.failures)).to.equal(true)
    expect(sha256File(dst)).to.equal(sha256File(file))
  })

  it('releases the sender\'s descriptors and buffers when the receiver dies mid-transfer', async function () {
    const file = path.join(work, 'big')
    writeRandom(file, 64 * MiB)
    const before = engine.stats()
    const server = spawnLoopbackServer([POSIX])
    const dst = path.join(work, 'dst')
    const started = Date.now()
    let killed = false
    const copying = push(server, {
      sources: [file],
      destination: dst,
      // Paced, so that the transfer is surely under way when the receiver is killed.
      options: opts({ bindAddress: '127.0.0.1', streams: 2, limitBytesPerSec: 16 * MiB }),
      onProgress: (p) => {
        if (!killed && p.bytesDone > 4 * MiB) {
          killed = true
          killLoopbackChildren()
        }
      },
    }, '127.0.0.1')
    const outcome = await copying.then(
      (s) => ({ ok: s.ok }),
      (err: { code?: string }) => ({ ok: false, code: err.code }),
    )
    expect(killed, 'the receiver was killed mid-transfer').to.equal(true)
    expect(outcome.ok).to.equal(false)
    expect(Date.now() - started).to.be.below(30_000)
    expect(await settledStats(engine, before)).to.deep.include({ openFiles: before.openFiles, alignedBuffers: before.alignedBuffers })
    expect(fs.existsSync(dst), 'nothing under the final name').to.equal(false)
  })
})
