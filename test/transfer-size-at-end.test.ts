// Files whose size is known only at their end (protocol 1.2): what the receiver accepts from a
// sender that announces one with FileSpec.size_at_end, and what it checks once FileDone gives the
// size. The real server receives; a sender that says whatever a test tells it to drives it. The
// sending side is tested with real shared-memory streams in packages/engine-shm/test.
import fs from 'node:fs'
import path from 'node:path'
import { expect } from 'chai'
import { loadPlugins } from '@escp/core'
import type { PluginSet, TransferOptions } from '@escp/core'
import { HostileSender, within } from './helpers/hostile-sender'
import { tempDir } from './helpers/trees'

const KiB = 1024
const BLOCK = 64 * KiB
let nextPort = 36000 + (process.pid % 1000) * 4

function opts(extra: Partial<TransferOptions> = {}): Partial<TransferOptions> {
  nextPort += 4
  return { port: nextPort, portRange: 4, blockSizeBytes: BLOCK, ...extra }
}

describe('files whose size is known only at their end (protocol 1.2), at the receiver', function () {
  this.timeout(30_000)
  let set: PluginSet
  let work: string
  let dest: string
  const full = [Buffer.alloc(BLOCK, 'a'), Buffer.alloc(BLOCK, 'b')]
  const tail = Buffer.alloc(100, 't')

  before(async function () {
    set = await loadPlugins({ plugins: [] })
  })
  beforeEach(function () {
    work = tempDir('size-at-end')
    dest = path.join(work, 'dest')
    fs.mkdirSync(dest)
  })
  afterEach(async function () {
    await HostileSender.killAll()
    fs.rmSync(work, { recursive: true, force: true })
  })

  function start(protocolMinor?: number): Promise<HostileSender> {
    return HostileSender.start(set, dest, opts(), protocolMinor)
  }

  /** Announces 'stream.bin' with its size to come at the end, then sends `blocks` as [offset, data] over both streams. */
  async function send(peer: HostileSender, blocks: Array<[number, Buffer]>): Promise<void> {
    await peer.announce([{ id: 0n, path: 'stream.bin', sizeAtEnd: true }])
    for (const [i, [offset, data]] of blocks.entries()) await peer.block(0n, offset, data, i % 2)
  }

  /**
   * Waits until the file's temporary copy holds what `check` looks for: the blocks before it are
   * then written, so a FileDone sent next finds them already checked (the meta and data streams
   * race otherwise, and a FileDone that comes first has blocks checked against its size instead).
   */
  async function whenWritten(check: (temp: Buffer) => boolean): Promise<void> {
    const deadline = Date.now() + 5000
    for (;;) {
      const temp = fs.readdirSync(dest).find((n) => n.endsWith('.tmp'))
      if (temp && check(fs.readFileSync(path.join(dest, temp)))) return
      if (Date.now() > deadline) throw new Error('the blocks were not written within 5 s')
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  }

  function expectFatal(peer: HostileSender, pattern: RegExp): Promise<void> {
    return peer.expectFatal(dest, pattern)
  }

  async function expectFileFails(peer: HostileSender, code: string, pattern: RegExp): Promise<void> {
    await peer.sessionEnd(1)
    const done = await within(peer.finish(), 15_000, 'the end of the session')
    const v = peer.verdicts.get(0n)
    expect(v?.ok).to.equal(false)
    expect(v?.error?.code).to.equal(code)
    expect(v?.error?.message, v?.error?.message).to.match(pattern)
    expect(done).to.include({ ok: false, filesFailed: 1n })
    // Neither under its name nor as a temporary file.
    expect(fs.readdirSync(dest)).to.deep.equal([])
    await peer.close()
  }

  it('writes the file, takes its size from FileDone, and verifies its digest', async function () {
    const peer = await start()
    expect(peer.session.sharedMinor).to.be.at.least(2)
    // The short last block first, as streams may deliver it.
    await send(peer, [[2 * BLOCK, tail], [0, full[0]], [BLOCK, full[1]]])
    await peer.done([{ id: 0n, size: BigInt(2 * BLOCK + 100), blocks: 3n, digest: peer.digestOf([...full, tail]) }])
    await peer.sessionEnd(1)
    const done = await within(peer.finish(), 15_000, 'the end of the session')
    expect(peer.verdicts.get(0n)?.error).to.equal(undefined)
    expect(done).to.include({ ok: true, filesOk: 1n })
    expect(fs.readFileSync(path.join(dest, 'stream.bin'))).to.deep.equal(Buffer.concat([...full, tail]))
    await peer.close()
  })

  it('writes a file that ends on a block boundary, and one that is empty', async function () {
    const peer = await start()
    await peer.announce([{ id: 0n, path: 'even.bin', sizeAtEnd: true }, { id: 1n, path: 'empty.bin', sizeAtEnd: true }])
    await peer.block(0n, BLOCK, full[1], 1)
    await peer.block(0n, 0, full[0], 0)
    await peer.done([
      { id: 0n, size: BigInt(2 * BLOCK), blocks: 2n, digest: peer.digestOf(full) },
      { id: 1n, size: 0n, blocks: 0n, digest: peer.digestOf([]) },
    ])
    await peer.sessionEnd(2)
    const done = await within(peer.finish(), 15_000, 'the end of the session')
    expect(done).to.include({ ok: true, filesOk: 2n })
    expect(fs.readFileSync(path.join(dest, 'even.bin'))).to.deep.equal(Buffer.concat(full))
    expect(fs.statSync(path.join(dest, 'empty.bin')).size).to.equal(0)
    await peer.close()
  })

  it('fails the session with ESCP_ERR_PROTOCOL for such a file from a sender of protocol 1.1', async function () {
    const peer = await start(1)
    expect(peer.session.sharedMinor).to.equal(1)
    await peer.announce([{ id: 0n, path: 'stream.bin', sizeAtEnd: true }])
    await expectFatal(peer, /files of unknown size are not part of protocol 1\.1 transfers/)
  })

  it('fails the session with ESCP_ERR_PROTOCOL for such a file announced with a size', async function () {
    const peer = await start()
    await peer.announce([{ id: 0n, path: 'stream.bin', sizeAtEnd: true, size: 100n }])
    await expectFatal(peer, /size known only at its end, and a size of 100 bytes/)
  })

  it('fails the session with ESCP_ERR_PROTOCOL for a FileDone whose block count disagrees with its size', async function () {
    const peer = await start()
    await send(peer, [[0, full[0]], [BLOCK, full[1]]])
    await peer.done([{ id: 0n, size: BigInt(2 * BLOCK + 100), blocks: 2n, digest: peer.digestOf([...full, tail]) }])
    await expectFatal(peer, /count of 2 blocks disagrees with its size of 131172 bytes/)
  })

  it('fails the file with ESCP_ERR_PROTOCOL for a short block that does not end it', async function () {
    const peer = await start()
    // The short block is in the middle: the size FileDone gives ends after a full block beyond it.
    await send(peer, [[0, tail], [BLOCK, full[1]]])
    await whenWritten((t) => t.byteLength === 2 * BLOCK && t.subarray(0, 100).equals(tail))
    await peer.done([{ id: 0n, size: BigInt(2 * BLOCK), blocks: 2n, digest: peer.digestOf([tail, full[1]]) }])
    await expectFileFails(peer, 'ESCP_ERR_PROTOCOL', /not one of the blocks of its final 131072 bytes/)
  })

  it('fails the file with ESCP_ERR_PROTOCOL for a block beyond the size FileDone gives', async function () {
    const peer = await start()
    await send(peer, [[0, full[0]], [2 * BLOCK, full[1]]])
    await whenWritten((t) => t.byteLength === 3 * BLOCK && t.subarray(0, BLOCK).equals(full[0]))
    await peer.done([{ id: 0n, size: BigInt(2 * BLOCK), blocks: 2n, digest: peer.digestOf(full) }])
    await expectFileFails(peer, 'ESCP_ERR_PROTOCOL', /not one of the blocks of its final/)
  })

  it('fails the file with ESCP_ERR_PROTOCOL for a block beyond the largest file escp can write', async function () {
    const peer = await start()
    const far = Math.floor(Number.MAX_SAFE_INTEGER / BLOCK) * BLOCK
    // One stream, the far block first: its refusal comes before block 0 is written.
    await peer.announce([{ id: 0n, path: 'stream.bin', sizeAtEnd: true }])
    await peer.block(0n, far, full[1], 0)
    await peer.block(0n, 0, full[0], 0)
    await whenWritten((t) => t.byteLength === BLOCK)
    await peer.done([{ id: 0n, size: BigInt(2 * BLOCK), blocks: 2n, digest: peer.digestOf(full) }])
    await expectFileFails(peer, 'ESCP_ERR_PROTOCOL', /beyond the 9007199254740991 bytes escp can write/)
  })

  it('fails the file with ESCP_ERR_VERIFY when the bytes written differ from the sender\'s digest', async function () {
    const peer = await start()
    await send(peer, [[0, full[0]], [BLOCK, full[1]], [2 * BLOCK, tail]])
    await peer.done([{ id: 0n, size: BigInt(2 * BLOCK + 100), blocks: 3n, digest: peer.digestOf([full[1], full[0], tail]) }])
    await expectFileFails(peer, 'ESCP_ERR_VERIFY', /digest/)
  })
})
