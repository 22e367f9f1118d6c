// Sparse files (protocol 1.1): the sender reads only the blocks that hold data, the receiver
// leaves the rest as holes, and the digest still covers every byte. Real files on the local
// file system, extents from the posix engine (SEEK_DATA/SEEK_HOLE), real loopback transfers; the
// receiver's checks are driven by a sender that says whatever a test tells it to.
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { expect } from 'chai'
import { copy, loadPlugins, withDefaults } from '@escp/core'
import type { PluginSet, TransferOptions } from '@escp/core'
import { HostileSender, within } from './helpers/hostile-sender'
import { pullSpeaking as pullWith } from './helpers/pull'
import { sha256File, tempDir } from './helpers/trees'
import { skipBecause } from '@escp/core/testing'

const KiB = 1024
const MiB = 1024 * KiB
const POSIX = '@escp/engine-posix'
let nextPort = 30000 + (process.pid % 1000) * 10

function opts(extra: Partial<TransferOptions> = {}): Partial<TransferOptions> {
  nextPort += 10
  return { port: nextPort, portRange: 10, ...extra }
}

/** What `du` counts: the bytes a file occupies on disk. */
function allocatedBytes(file: string): number {
  return fs.statSync(file).blocks * 512
}

/** Writes `size` bytes of hole with random data at each of `data` ([offset, length]). */
function writeSparse(file: string, sizeBytes: number, data: Array<[number, number]>): void {
  const fd = fs.openSync(file, 'w')
  try {
    for (const [offset, length] of data) fs.writeSync(fd, crypto.randomBytes(length), 0, length, offset)
    fs.ftruncateSync(fd, sizeBytes)
  } finally {
    fs.closeSync(fd)
  }
}

/** Bytes in the blocks of `blockSize` that hold any of `data`: what a hole-skipping sender sends. */
function dataBlockBytes(sizeBytes: number, blockSize: number, data: Array<[number, number]>): number {
  const blocks = new Set<number>()
  for (const [offset, length] of data) for (let b = Math.floor(offset / blockSize); b * blockSize < offset + length; b++) blocks.add(b)
  let n = 0
  for (const b of blocks) n += Math.min(blockSize, sizeBytes - b * blockSize)
  return n
}

describe('sparse files', function () {
  this.timeout(60_000)
  let work: string
  let posix: PluginSet | undefined
  let noPosix = ''

  before(async function () {
    try {
      posix = await loadPlugins({ plugins: [POSIX] })
      const entry = posix.registry.list('engine').find((e) => e.name === 'posix')
      if (!entry) noPosix = `${POSIX} registers no 'posix' engine`
      else if (!entry.availability.ok) noPosix = entry.availability.reason
    } catch (err) {
      noPosix = `${POSIX} does not load: ${(err as Error).message}`
    }
  })
  beforeEach(function () {
    work = tempDir('sparse')
  })
  afterEach(async function () {
    await HostileSender.killAll()
    fs.rmSync(work, { recursive: true, force: true })
  })

  /** Skips a test that needs extents when the posix engine cannot give them here. */
  function needPosix(ctx: Mocha.Context): PluginSet {
    if (noPosix || !posix) {
      skipBecause(ctx, `${noPosix}`)
    }
    return posix as PluginSet
  }

  describe('copied with the posix engine', function () {
    const SIZE = 64 * MiB
    // Data at the start, across the block boundary at 40 MiB, and a tail; holes elsewhere.
    const DATA: Array<[number, number]> = [[0, 300 * KiB], [40 * MiB - 100 * KiB, 300 * KiB], [SIZE - 1000, 1000]]

    it('sends only the blocks that hold data, and the copy is byte-identical, verified, with its holes', async function () {
      needPosix(this)
      const file = path.join(work, 'disk.img')
      writeSparse(file, SIZE, DATA)
      expect(allocatedBytes(file), 'the source is sparse').to.be.lessThan(4 * MiB)
      for (const checksum of ['xxh64', 'sha256', 'none']) {
        const dst = path.join(work, `copy-${checksum}.img`)
        const summary = await copy({ sources: [file], destination: dst, options: opts({ plugins: [POSIX], engine: 'posix', checksum, streams: 2 }) })
        expect(summary.ok, JSON.stringify(summary.failures)).to.equal(true)
        expect(summary.checksum).to.equal(checksum)
        // Blocks 0, 39, 40 and 63 of 1 MiB.
        expect(summary.bytes, checksum).to.equal(dataBlockBytes(SIZE, MiB, DATA))
        expect(summary.bytes).to.equal(4 * MiB)
        expect(summary.holeBytes).to.equal(SIZE - summary.bytes)
        expect(fs.statSync(dst).size).to.equal(SIZE)
        expect(sha256File(dst)).to.equal(sha256File(file))
        expect(allocatedBytes(dst), 'holes stay holes at the destination').to.be.at.most(summary.bytes + 64 * KiB)
      }
    })

    it('sends the one block of a file that holds data from its own offset, whichever block it is', async function () {
      needPosix(this)
      // One data block each: the second, one in the middle, the last (short), the first of a larger file.
      const cases: Array<[number, Array<[number, number]>]> = [
        [2 * MiB, [[MiB, 4]]],
        [5 * MiB, [[3_000_000, 1000]]],
        [3 * MiB + 5000, [[3 * MiB + 10, 100]]],
        [4 * MiB, [[10, 100]]],
      ]
      for (const [i, [sizeBytes, data]] of cases.entries()) {
        const file = path.join(work, `one-block-${i}.img`)
        writeSparse(file, sizeBytes, data)
        const dst = path.join(work, `one-block-${i}-copy.img`)
        const summary = await copy({ sources: [file], destination: dst, options: opts({ plugins: [POSIX], engine: 'posix', streams: 1 }) })
        expect(summary.ok, JSON.stringify(summary.failures)).to.equal(true)
        expect(summary.bytes, `case ${i}`).to.equal(dataBlockBytes(sizeBytes, MiB, data))
        expect(sha256File(dst), `case ${i}: the copy's bytes`).to.equal(sha256File(file))
      }
    })

    it('sends a file that is all hole with no block at all', async function () {
      needPosix(this)
      const file = path.join(work, 'empty.img')
      fs.writeFileSync(file, '')
      fs.truncateSync(file, 10 * MiB)
      const dst = path.join(work, 'empty-copy.img')
      const summary = await copy({ sources: [file], destination: dst, options: opts({ plugins: [POSIX], engine: 'posix', blockSizeBytes: 256 * KiB }) })
      expect(summary.ok, JSON.stringify(summary.failures)).to.equal(true)
      expect(summary.bytes).to.equal(0)
      expect(summary.wireBytes).to.equal(0)
      expect(summary.holeBytes).to.equal(10 * MiB)
      expect(fs.statSync(dst).size).to.equal(10 * MiB)
      expect(allocatedBytes(dst)).to.equal(0)
      expect(sha256File(dst)).to.equal(sha256File(file))
    })

    it('sends a sparse file whole to a peer of protocol 1.0, and skips its holes for a 1.1 peer', async function () {
      const set = needPosix(this)
      const file = path.join(work, 'disk.img')
      writeSparse(file, SIZE, DATA)
      // A pull: the server sends, and learns the client's minor version from its SessionInit.
      for (const minor of [0, 1]) {
        const dst = path.join(work, `pulled-1.${minor}.img`)
        const r = await pullSpeaking(set, minor, file, dst)
        expect(r.failures, `as 1.${minor}`).to.deep.equal([])
        expect(r.entriesOk).to.equal(1)
        expect(sha256File(dst)).to.equal(sha256File(file))
        if (minor === 0) {
          expect(r.bytes, 'to 1.0: every byte').to.equal(SIZE)
          expect(r.holeBytes).to.equal(0)
        } else {
          expect(r.bytes, 'to 1.1: the data blocks').to.equal(4 * MiB)
          expect(r.holeBytes).to.equal(SIZE - 4 * MiB)
          expect(allocatedBytes(dst)).to.be.at.most(4 * MiB + 64 * KiB)
        }
      }
    })

    /** Pulls `source` into `destination` (posix on both sides), the client speaking protocol 1.`minor`. */
    async function pullSpeaking(set: PluginSet, minor: number, source: string, destination: string) {
      const o = withDefaults(opts({ plugins: [POSIX], engine: 'posix', streams: 2 }))
      const pulled = await pullWith(set, o, minor, source, destination, { server: 'posix', client: 'posix' })
      expect(pulled.ok).to.equal(true)
      return pulled.result
    }
  })

  describe('the receiver, given a file whose holes the sender skips', function () {
    const BLOCK = 64 * KiB
    // Four blocks, the last of 100 bytes; blocks 1 and 2 lie in a hole.
    const SIZE = 3 * BLOCK + 100
    const head = Buffer.alloc(BLOCK, 'h')
    const tail = Buffer.alloc(100, 't')
    const hole = Buffer.alloc(BLOCK)
    let set: PluginSet
    let dest: string

    before(async function () {
      set = await loadPlugins({ plugins: [] })
    })
    beforeEach(function () {
      dest = path.join(work, 'dest')
      fs.mkdirSync(dest)
    })

    async function start(protocolMinor?: number): Promise<HostileSender> {
      return HostileSender.start(set, dest, opts({ blockSizeBytes: BLOCK }), protocolMinor)
    }

    /** Announces the file, then sends `blocks` as [offset, data] over both streams. */
    async function send(peer: HostileSender, sparseBytes: bigint, blocks: Array<[number, Buffer]>): Promise<void> {
      await peer.announce([{ id: 0n, path: 'sparse.bin', size: BigInt(SIZE), sparseBytes }])
      for (const [i, [offset, data]] of blocks.entries()) await peer.block(0n, offset, data, i % 2)
    }

    function expectFatal(peer: HostileSender, pattern: RegExp): Promise<void> {
      return peer.expectFatal(dest, pattern)
    }

    it('writes the blocks sent, leaves the others as holes, and verifies the digest with them as zeros', async function () {
      const peer = await start()
      await send(peer, BigInt(2 * BLOCK), [[0, head], [3 * BLOCK, tail]])
      await peer.done([{ id: 0n, size: BigInt(SIZE), blocks: 2n, digest: peer.digestOf([head, hole, hole, tail]) }])
      await peer.sessionEnd(1)
      const done = await within(peer.finish(), 15_000, 'the end of the session')
      expect(peer.verdicts.get(0n)?.error).to.equal(undefined)
      expect(done).to.include({ ok: true, filesOk: 1n })
      const written = path.join(dest, 'sparse.bin')
      expect(fs.readFileSync(written)).to.deep.equal(Buffer.concat([head, hole, hole, tail]))
      expect(allocatedBytes(written), 'the skipped blocks are holes').to.be.lessThan(2 * BLOCK)
      await peer.close()
    })

    it('fails the file with ESCP_ERR_VERIFY when the sender digested a skipped block as data', async function () {
      const peer = await start()
      await send(peer, BigInt(2 * BLOCK), [[0, head], [3 * BLOCK, tail]])
      await peer.done([{ id: 0n, size: BigInt(SIZE), blocks: 2n, digest: peer.digestOf([head, Buffer.alloc(BLOCK, 'x'), hole, tail]) }])
      await peer.sessionEnd(1)
      await within(peer.finish(), 15_000, 'the end of the session')
      expect(peer.verdicts.get(0n)?.error?.code).to.equal('ESCP_ERR_VERIFY')
      expect(fs.readdirSync(dest)).to.deep.equal([])
      await peer.close()
    })

    it('fails the file with ESCP_ERR_PROTOCOL for a second block at one offset in place of another', async function () {
      const peer = await start()
      // Two blocks as counted, but block 0 twice and the last one left out: were the second
      // block 0 passed over, the digest (last block as zeros) would match whichever came first
      // while the file held whichever was written last.
      await send(peer, BigInt(2 * BLOCK), [[0, head], [0, Buffer.alloc(BLOCK, 's')]])
      await peer.done([{ id: 0n, size: BigInt(SIZE), blocks: 2n, digest: peer.digestOf([head, hole, hole, Buffer.alloc(100)]) }])
      await peer.sessionEnd(1)
      await within(peer.finish(), 15_000, 'the end of the session')
      const v = peer.verdicts.get(0n)
      expect(v?.ok).to.equal(false)
      expect(v?.error?.code).to.equal('ESCP_ERR_PROTOCOL')
      expect(v?.error?.message).to.contain('second block')
      expect(fs.readdirSync(dest)).to.deep.equal([])
      await peer.close()
    })

    it('fails the session with ESCP_ERR_PROTOCOL for a FileDone counting more blocks than the file has', async function () {
      const peer = await start()
      await send(peer, BigInt(BLOCK), [[0, head]])
      await peer.done([{ id: 0n, size: BigInt(SIZE), blocks: 5n, digest: peer.digestOf([head]) }])
      await expectFatal(peer, /count of 5 blocks disagrees/)
    })

    it('fails the session with ESCP_ERR_PROTOCOL for a file without holes whose FileDone counts fewer blocks', async function () {
      const peer = await start()
      await send(peer, 0n, [[0, head], [3 * BLOCK, tail]])
      await peer.done([{ id: 0n, size: BigInt(SIZE), blocks: 2n, digest: peer.digestOf([head, hole, hole, tail]) }])
      await expectFatal(peer, /count of 2 blocks disagrees .* 0 bytes of holes/)
    })

    it('fails the session with ESCP_ERR_PROTOCOL for holes that are not the blocks left out', async function () {
      const peer = await start()
      // Two blocks left out, but sparse_bytes says one (or every block sent while it says holes).
      await send(peer, BigInt(BLOCK), [[0, head], [3 * BLOCK, tail]])
      await peer.done([{ id: 0n, size: BigInt(SIZE), blocks: 2n, digest: peer.digestOf([head, hole, hole, tail]) }])
      await expectFatal(peer, /count of 2 blocks disagrees/)
    })

    it('fails the session with ESCP_ERR_PROTOCOL for more bytes of holes than the file has', async function () {
      const peer = await start()
      await peer.announce([{ id: 0n, path: 'sparse.bin', size: BigInt(SIZE), sparseBytes: BigInt(SIZE + 1) }])
      await expectFatal(peer, /bytes of holes in/)
    })

    it('ignores sparse_bytes from a sender of protocol 1.0, which sends every block', async function () {
      const peer = await start(0)
      await send(peer, BigInt(2 * BLOCK), [[0, head], [BLOCK, hole], [2 * BLOCK, hole], [3 * BLOCK, tail]])
      await peer.done([{ id: 0n, size: BigInt(SIZE), blocks: 4n, digest: peer.digestOf([head, hole, hole, tail]) }])
      await peer.sessionEnd(1)
      const done = await within(peer.finish(), 15_000, 'the end of the session')
      expect(peer.verdicts.get(0n)?.error).to.equal(undefined)
      expect(done).to.include({ ok: true, filesOk: 1n })
      expect(fs.readFileSync(path.join(dest, 'sparse.bin'))).to.deep.equal(Buffer.concat([head, hole, hole, tail]))
      await peer.close()
    })
  })
})
