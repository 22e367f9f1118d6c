// Faults and attacks on a loopback transfer: a hostile sender that speaks the protocol with
// the library's own pieces, a stream or the whole receiver killed mid-file, sources that
// cannot be read and destinations that cannot be written. Real processes, sockets and files.
import { execFileSync, spawnSync } from 'node:child_process'
import crypto from 'node:crypto'
import { once } from 'node:events'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { PassThrough } from 'node:stream'
import { expect } from 'chai'
import { copy, loadPlugins, protocol, push, withDefaults } from '@escp/core'
import type { EscpError, PluginSet, ServerProcess, TransferOptions, TransferSummary } from '@escp/core'
import { HostileSender, within } from './helpers/hostile-sender'
import { pullSpeaking } from './helpers/pull'
import type { EntrySpec } from './helpers/hostile-sender'
import { describeTree, leftoverTemps, sha256File, tempDir, writeRandom } from './helpers/trees'
import { skipBecause } from '@escp/core/testing'

const KiB = 1024
const MiB = 1024 * KiB
const BLOCK = 64 * KiB
const CORE_MAIN = path.resolve(__dirname, '../packages/core/dist/index.js')
/** An unprivileged user: the tests run as root, which reads and writes anything. */
const NOBODY = 65534
let nextPort = 28000 + (process.pid % 1000) * 10

function opts(extra: Partial<TransferOptions> = {}): Partial<TransferOptions> {
  nextPort += 10
  return { blockSizeBytes: BLOCK, port: nextPort, portRange: 10, ...extra }
}

/** Names under `dir`, sorted; symlinks are listed, never followed. */
function entries(dir: string): string[] {
  return fs.readdirSync(dir).sort()
}

describe('loopback transfer under faults and attacks', function () {
  this.timeout(60_000)
  let work: string
  let set: PluginSet

  before(async function () {
    set = await loadPlugins({ plugins: [] })
  })
  beforeEach(function () {
    work = tempDir('faults')
  })
  afterEach(async function () {
    await HostileSender.killAll()
    fs.rmSync(work, { recursive: true, force: true })
  })

  describe('a hostile sender', function () {
    let dest: string
    let outside: string

    beforeEach(function () {
      dest = path.join(work, 'dest')
      outside = path.join(work, 'outside')
      fs.mkdirSync(dest)
      fs.mkdirSync(outside)
      fs.symlinkSync(outside, path.join(dest, 'inside-link'))
    })

    /** Nothing landed outside the destination: not in `outside`, not beside `dest`. */
    function expectNothingOutside(): void {
      expect(entries(outside), 'the directory the planted symlink points to').to.deep.equal([])
      expect(entries(work), "the destination's parent").to.deep.equal(['dest', 'outside'])
      expect(leftoverTemps(dest)).to.deep.equal([])
    }

    it('gets every name that escapes the destination refused with ESCP_ERR_PATH_UNSAFE, and nothing written outside', async function () {
      const peer = await HostileSender.start(set, dest, opts())
      const payload = Buffer.from('written by a hostile sender\n')
      const escapee = `escp-escaped-${process.pid}`
      const hostile: EntrySpec[] = [
        { id: 0n, path: '../escape' },
        { id: 1n, path: path.join(outside, 'absolute') },
        { id: 2n, path: 'a/../../b' },
        { id: 3n, path: Buffer.from('nul\0byte') },
        { id: 4n, path: '' },
        { id: 5n, path: 'inside-link/x' },
        // A link of its own making, then a name through it.
        { id: 6n, path: 'made-link', type: 'symlink', linkTarget: Buffer.from(outside) },
        { id: 7n, path: 'made-link/y' },
        { id: 8n, path: 'inside-link/sub', type: 'directory', mode: 0o755 },
        { id: 9n, path: 'ok.txt' },
        // Two levels up: beside the work directory, in the system's temporary directory.
        { id: 10n, path: `../../${escapee}` },
      ]
      const files = hostile.filter((e) => (e.type ?? 'file') === 'file')
      await peer.announce(hostile.map((e) => ({ ...e, size: e.type ? 0n : BigInt(payload.byteLength) })))
      for (const f of files) await peer.block(f.id, 0, payload, Number(f.id) % 2)
      await peer.done(files.map((f) => ({ id: f.id, size: BigInt(payload.byteLength), blocks: 1n, digest: peer.digestOf([payload]) })))
      await peer.sessionEnd(hostile.length)
      const done = await within(peer.finish(), 15_000, 'the end of the session')

      const refused = [0n, 1n, 2n, 3n, 4n, 5n, 7n, 8n, 10n]
      for (const id of refused) {
        const v = peer.verdicts.get(id)
        expect(v?.ok, `entry ${id} (${JSON.stringify(String(hostile[Number(id)].path))})`).to.equal(false)
        expect(v?.error?.code, `entry ${id}`).to.equal('ESCP_ERR_PATH_UNSAFE')
      }
      expect(peer.verdicts.get(6n)?.ok, 'a symlink is created with its target as given').to.equal(true)
      expect(peer.verdicts.get(9n)?.ok, 'an honest file in the same session').to.equal(true)
      expect(done).to.include({ ok: false, filesFailed: BigInt(refused.length), filesOk: 2n })
      expectNothingOutside()
      expect(fs.existsSync(path.join(path.dirname(work), escapee))).to.equal(false)
      expect(entries(dest)).to.deep.equal(['inside-link', 'made-link', 'ok.txt'])
      expect(fs.readFileSync(path.join(dest, 'ok.txt'))).to.deep.equal(payload)
      expect(fs.readlinkSync(path.join(dest, 'made-link'))).to.equal(outside)
      await peer.close()
    })

    it('fails the session with ESCP_ERR_PROTOCOL for entry ids out of order', async function () {
      const peer = await HostileSender.start(set, dest, opts())
      await peer.announce([{ id: 1n, path: 'one' }])
      const fatal = await within(peer.fatal(), 10_000, "the server's Fatal")
      expect(fatal.code).to.equal('ESCP_ERR_PROTOCOL')
      expect(fatal.message).to.contain('ids')
      await peer.close()
      expectNothingOutside()
      expect(entries(dest)).to.deep.equal(['inside-link'])
    })

    it('does not let a file whose digest is wrong appear under its final name (ESCP_ERR_VERIFY)', async function () {
      const peer = await HostileSender.start(set, dest, opts())
      const blocks = [Buffer.alloc(BLOCK, 'a'), Buffer.from('tail')]
      const size = BigInt(BLOCK + 4)
      await peer.announce([{ id: 0n, path: 'liar.bin', size }, { id: 1n, path: 'honest.bin', size }])
      for (const id of [0n, 1n]) {
        await peer.block(id, 0, blocks[0], 0)
        await peer.block(id, BLOCK, blocks[1], 1)
      }
      const right = peer.digestOf(blocks)
      const wrong = Uint8Array.from(right, (b) => b ^ 0xff)
      // A file of one block is finished by the stream worker that writes it, before its digest
      // is compared: it must not appear either.
      const one = Buffer.from('one block')
      await peer.announce([{ id: 2n, path: 'small-liar.bin', size: BigInt(one.length) }])
      await peer.block(2n, 0, one)
      await peer.done([{ id: 0n, size, blocks: 2n, digest: wrong }, { id: 1n, size, blocks: 2n, digest: right }])
      await peer.done([{ id: 2n, size: BigInt(one.length), blocks: 1n, digest: peer.digestOf([Buffer.from('one bluck')]) }])
      await peer.sessionEnd(3)
      await within(peer.finish(), 15_000, 'the end of the session')
      expect(peer.verdicts.get(0n)?.error?.code).to.equal('ESCP_ERR_VERIFY')
      expect(peer.verdicts.get(1n)?.ok).to.equal(true)
      expect(peer.verdicts.get(2n)?.error?.code).to.equal('ESCP_ERR_VERIFY')
      expect(entries(dest)).to.deep.equal(['honest.bin', 'inside-link'])
      expectNothingOutside()
      await peer.close()
    })

    it('refuses a block beyond the announced size', async function () {
      const peer = await HostileSender.start(set, dest, opts())
      const data = Buffer.alloc(1000, 'b')
      await peer.announce([{ id: 0n, path: 'short.bin', size: 1000n }])
      // One block, as a 1000-byte file has, but placed past its end.
      await peer.block(0n, BLOCK, data)
      await peer.done([{ id: 0n, size: 1000n, blocks: 1n, digest: peer.digestOf([data]) }])
      await peer.sessionEnd(1)
      await expectRefusedFile(peer, 0n)
      expect(entries(dest)).to.deep.equal(['inside-link'])
      expectNothingOutside()
      await peer.close()
    })

    it('fails the session with ESCP_ERR_PROTOCOL for a FileDone whose block count disagrees with the size', async function () {
      const peer = await HostileSender.start(set, dest, opts())
      const data = Buffer.alloc(1000, 'c')
      await peer.announce([{ id: 0n, path: 'counted.bin', size: 1000n }])
      await peer.block(0n, 0, data)
      await peer.done([{ id: 0n, size: 1000n, blocks: 3n, digest: peer.digestOf([data]) }])
      const fatal = await within(peer.fatal(), 10_000, "the server's Fatal")
      expect(fatal.code).to.equal('ESCP_ERR_PROTOCOL')
      await peer.close()
      expect(entries(dest)).to.deep.equal(['inside-link'])
      expectNothingOutside()
    })

    it('fails the session with ESCP_ERR_PROTOCOL for more blocks than its FileDone counts', async function () {
      const peer = await HostileSender.start(set, dest, opts())
      const verified = Buffer.alloc(1000, 'v')
      const smuggled = Buffer.alloc(1000, 's')
      await peer.announce([{ id: 0n, path: 'twice.bin', size: 1000n }])
      await peer.block(0n, 0, verified, 0)
      await peer.block(0n, 0, smuggled, 1)
      await peer.done([{ id: 0n, size: 1000n, blocks: 1n, digest: peer.digestOf([verified]) }])
      await peer.sessionEnd(1)
      const fatal = await within(peer.fatal(), 10_000, "the server's Fatal")
      expect(fatal.code).to.equal('ESCP_ERR_PROTOCOL')
      await peer.close()
      // Whatever got in first may stand, but only as what was verified.
      const final = path.join(dest, 'twice.bin')
      if (fs.existsSync(final)) expect(fs.readFileSync(final)).to.deep.equal(verified)
      expectNothingOutside()
    })

    it('fails the session with ESCP_ERR_PROTOCOL for a block of a file already answered', async function () {
      const peer = await HostileSender.start(set, dest, opts())
      const data = Buffer.alloc(1000, 'a')
      await peer.announce([{ id: 0n, path: 'answered.bin', size: 1000n }], false)
      await peer.block(0n, 0, data)
      await peer.done([{ id: 0n, size: 1000n, blocks: 1n, digest: peer.digestOf([data]) }])
      await peer.waitVerdicts(1)
      expect(peer.verdicts.get(0n)?.ok).to.equal(true)
      await peer.block(0n, 0, Buffer.alloc(1000, 'z'))
      const fatal = await within(peer.fatal(), 10_000, "the server's Fatal")
      expect(fatal.code).to.equal('ESCP_ERR_PROTOCOL')
      await peer.close()
      expect(fs.readFileSync(path.join(dest, 'answered.bin'))).to.deep.equal(data)
      expectNothingOutside()
    })

    it('fails the session with ESCP_ERR_PROTOCOL for a block of an entry that is not a file', async function () {
      const peer = await HostileSender.start(set, dest, opts())
      await peer.announce([{ id: 0n, path: 'dir', type: 'directory', mode: 0o755 }])
      await peer.block(0n, 0, Buffer.from('into a directory'))
      await peer.sessionEnd(1)
      const fatal = await within(peer.fatal(), 10_000, "the server's Fatal")
      expect(fatal.code).to.equal('ESCP_ERR_PROTOCOL')
      await peer.close()
      expect(entries(path.join(dest, 'dir'))).to.deep.equal([])
      expectNothingOutside()
    })

    it('fails the session with ESCP_ERR_PROTOCOL for a block of an entry never announced', async function () {
      const peer = await HostileSender.start(set, dest, opts())
      await peer.announce([{ id: 0n, path: 'empty.bin' }])
      await peer.block(7n, 0, Buffer.from('for nobody'))
      await peer.done([{ id: 0n, size: 0n, blocks: 0n, digest: peer.digestOf([]) }])
      await peer.sessionEnd(1)
      const fatal = await within(peer.fatal(), 10_000, "the server's Fatal")
      expect(fatal.code).to.equal('ESCP_ERR_PROTOCOL')
      await peer.close()
      expectNothingOutside()
    })
  })

  describe('a sender of bundles (several small files in one record, protocol 1.3; with their digests, 1.4)', function () {
    let dest: string

    beforeEach(function () {
      dest = path.join(work, 'dest')
      fs.mkdirSync(dest)
    })

    const small = [Buffer.from('first file'), Buffer.alloc(3000, 'b'), Buffer.from('third')]
    const announced = (first = 0n): EntrySpec[] => small.map((data, i) => ({ id: first + BigInt(i), path: `f${i}.txt`, size: BigInt(data.length) }))

    it('gets each file of a bundle it made by hand written and verified (1.3, with FileDone)', async function () {
      const peer = await HostileSender.start(set, dest, opts(), 3)
      await peer.announce([{ id: 0n, path: 'sub', type: 'directory', mode: 0o755 }, ...announced(1n).map((e) => ({ ...e, path: `sub/${String(e.path)}` }))])
      await peer.bundle(1n, small)
      await peer.done(small.map((data, i) => ({ id: BigInt(i + 1), size: BigInt(data.length), blocks: 1n, digest: peer.digestOf([data]) })))
      await peer.sessionEnd(4)
      await within(peer.finish(), 15_000, 'the end of the session')
      expect([...peer.verdicts.values()].every((v) => v.ok)).to.equal(true)
      small.forEach((data, i) => expect(fs.readFileSync(path.join(dest, 'sub', `f${i}.txt`))).to.deep.equal(data))
      expect(leftoverTemps(dest)).to.deep.equal([])
      await peer.close()
    })

    it('fails the session with ESCP_ERR_PROTOCOL for a bundle whose bytes disagree with the sizes announced', async function () {
      const peer = await HostileSender.start(set, dest, opts())
      await peer.announce(announced())
      await peer.bundle(0n, [...small.slice(0, 2), Buffer.from('third, longer')])
      await peer.expectFatal(dest, /bundle of \d+ bytes whose 3 files announce/)
    })

    it('fails the session with ESCP_ERR_PROTOCOL for a bundle that holds a directory', async function () {
      const peer = await HostileSender.start(set, dest, opts())
      await peer.announce([...announced(), { id: 3n, path: 'dir', type: 'directory', mode: 0o755 }])
      await peer.bundle(1n, [small[1], small[2], Buffer.alloc(0)])
      const fatal = await within(peer.fatal(), 10_000, "the server's Fatal")
      expect(fatal.code).to.equal('ESCP_ERR_PROTOCOL')
      // Refused as a directory, or as an entry answered already (a directory is, once made).
      expect(fatal.message).to.match(/'dir', which is not a file|entry 3, which is already answered/)
      await peer.close()
      expect(leftoverTemps(dest)).to.deep.equal([])
    })

    it('fails the session with ESCP_ERR_PROTOCOL for a bundle holding a file that already had its block', async function () {
      const peer = await HostileSender.start(set, dest, opts())
      await peer.announce(announced())
      await peer.block(0n, 0, small[0])
      await peer.done([{ id: 0n, size: BigInt(small[0].length), blocks: 1n, digest: peer.digestOf([small[0]]) }])
      await peer.bundle(0n, small, 1)
      const fatal = await within(peer.fatal(), 10_000, "the server's Fatal")
      expect(fatal.code).to.equal('ESCP_ERR_PROTOCOL')
      await peer.close()
      expect(leftoverTemps(dest)).to.deep.equal([])
    })

    // The engine that creates small files in one call, with which the receiver's workers put
    // the files of a 1.4 bundle in place themselves; node-fs leaves that to the main thread.
    const POSIX_SERVER = { engine: 'posix', env: { ESCP_PLUGINS: '@escp/engine-posix' } }
    for (const [engine, server] of [['node-fs', {}], ['posix', POSIX_SERVER]] as const) {
      describe(`1.4, received with ${engine}`, function () {
        it('gets each file of a bundle that carries their digests written and verified, with no FileDone', async function () {
          const peer = await HostileSender.start(set, dest, opts(), 4, server)
          await peer.announce([{ id: 0n, path: 'sub', type: 'directory', mode: 0o755 }, ...announced(1n).map((e) => ({ ...e, path: `sub/${String(e.path)}`, mode: 0o640 }))])
          await peer.bundle(1n, small)
          await peer.sessionEnd(4)
          await within(peer.finish(), 15_000, 'the end of the session')
          expect([0n, 1n, 2n, 3n].map((id) => peer.verdicts.get(id)?.ok)).to.deep.equal([true, true, true, true])
          small.forEach((data, i) => {
            const file = path.join(dest, 'sub', `f${i}.txt`)
            expect(fs.readFileSync(file)).to.deep.equal(data)
            expect(fs.statSync(file).mode & 0o777).to.equal(0o640 & ~process.umask())
          })
          // Answered ok in runs of ids, which carry no digests (1.4): the directory's verdict may
          // go in a batch of its own when its files take longer than a batch waits.
          const runIds = peer.okRuns.flatMap((r) => Array.from({ length: Number(r.count) }, (_, k) => r.first + BigInt(k)))
          expect(runIds.sort((a, b) => Number(a - b))).to.deep.equal([0n, 1n, 2n, 3n])
          expect(leftoverTemps(dest)).to.deep.equal([])
          await peer.close()
        })

        it('writes and answers each file of many full bundles, as buffers are reused for later records', async function () {
          const peer = await HostileSender.start(set, dest, opts({ streams: 1 }), 4, server)
          const bundles = 16
          const files = Array.from({ length: bundles * 3 }, () => crypto.randomBytes(20 * KiB))
          await peer.announce(files.map((data, i) => ({ id: BigInt(i), path: `g${i}.bin`, size: BigInt(data.length) })))
          for (let k = 0; k < bundles; k++) await peer.bundle(BigInt(3 * k), files.slice(3 * k, 3 * k + 3))
          await peer.sessionEnd(files.length)
          await within(peer.finish(), 15_000, 'the end of the session')
          files.forEach((data, i) => {
            expect(peer.verdicts.get(BigInt(i))?.ok, `g${i}.bin`).to.equal(true)
            expect(fs.readFileSync(path.join(dest, `g${i}.bin`)).equals(data), `g${i}.bin's bytes`).to.equal(true)
          })
          await peer.close()
        })

        it('fails a file whose digest in its bundle differs with ESCP_ERR_VERIFY and writes nothing of it; the others arrive', async function () {
          const peer = await HostileSender.start(set, dest, opts(), 4, server)
          await peer.announce(announced())
          await peer.bundle(0n, small, 0, { digests: [peer.digestOf([small[0]]), peer.digestOf([Buffer.from('not these bytes')]), peer.digestOf([small[2]])] })
          await peer.sessionEnd(3)
          await within(peer.finish(), 15_000, 'the end of the session')
          expect([0n, 1n, 2n].map((id) => peer.verdicts.get(id)?.ok)).to.deep.equal([true, false, true])
          expect(peer.verdicts.get(1n)?.error?.code).to.equal('ESCP_ERR_VERIFY')
          expect(entries(dest)).to.deep.equal(['f0.txt', 'f2.txt'])
          await peer.close()
        })

        it('drops a file its bundle marks unreadable once the sender reports it, and verifies the others', async function () {
          const peer = await HostileSender.start(set, dest, opts(), 4, server)
          await peer.announce(announced())
          await peer.bundle(0n, [small[0], Buffer.alloc(small[1].length), small[2]], 0, { statuses: [protocol.BUNDLE_FILE_READ, protocol.BUNDLE_FILE_UNREADABLE, protocol.BUNDLE_FILE_READ], digests: [peer.digestOf([small[0]]), new Uint8Array(8), peer.digestOf([small[2]])] })
          await peer.unreadable(1n, 'f1.txt')
          await peer.sessionEnd(3)
          await within(peer.finish(), 15_000, 'the end of the session')
          expect([...peer.verdicts.keys()].sort()).to.deep.equal([0n, 2n])
          expect(entries(dest)).to.deep.equal(['f0.txt', 'f2.txt'])
          await peer.close()
        })
      })
    }

    it('fails the session with ESCP_ERR_PROTOCOL for a FileDone of a file whose 1.4 bundle carries its digest, before or after the bundle', async function () {
      for (const doneFirst of [true, false]) {
        const sub = path.join(dest, String(doneFirst))
        fs.mkdirSync(sub)
        const peer = await HostileSender.start(set, sub, opts(), 4)
        await peer.announce(announced())
        const done = () => peer.done([{ id: 1n, size: BigInt(small[1].length), blocks: 1n, digest: peer.digestOf([small[1]]) }])
        if (doneFirst) await done()
        await peer.bundle(0n, small)
        if (!doneFirst) await done()
        const fatal = await within(peer.fatal(), 10_000, "the server's Fatal")
        expect(fatal.code).to.equal('ESCP_ERR_PROTOCOL')
        expect(fatal.message).to.match(/FileDone/)
        await peer.close()
        expect(leftoverTemps(sub)).to.deep.equal([])
      }
    })

    it('fails the session with ESCP_ERR_PROTOCOL for a FileDone, in place of the Error report, of a file its 1.4 bundle marks unreadable, and puts nothing under its name', async function () {
      const peer = await HostileSender.start(set, dest, opts(), 4)
      await peer.announce(announced())
      const zeros = Buffer.alloc(small[1].length)
      await peer.bundle(0n, [small[0], zeros, small[2]], 0, { statuses: [protocol.BUNDLE_FILE_READ, protocol.BUNDLE_FILE_UNREADABLE, protocol.BUNDLE_FILE_READ], digests: [peer.digestOf([small[0]]), new Uint8Array(8), peer.digestOf([small[2]])] })
      await peer.done([{ id: 1n, size: BigInt(zeros.length), blocks: 1n, digest: peer.digestOf([zeros]) }])
      const fatal = await within(peer.fatal(), 10_000, "the server's Fatal")
      expect(fatal.code).to.equal('ESCP_ERR_PROTOCOL')
      // The meta and data streams race: refused as it arrives, before or after the bundle.
      expect(fatal.message).to.match(/FileDone for 'f1\.txt', whose bundle carries its digest|bundle holding 'f1\.txt', whose FileDone came/)
      await peer.close()
      expect(fs.existsSync(path.join(dest, 'f1.txt'))).to.equal(false)
      expect(leftoverTemps(dest)).to.deep.equal([])
    })

    it('fails the session with ESCP_ERR_PROTOCOL for a 1.4 bundle holding a file that had a block, before writing the bundle', async function () {
      const peer = await HostileSender.start(set, dest, opts({ streams: 1 }), 4)
      await peer.announce(announced())
      await peer.block(1n, 0, Buffer.alloc(small[1].length, 'x'))
      await peer.bundle(0n, small)
      const fatal = await within(peer.fatal(), 10_000, "the server's Fatal")
      expect(fatal.code).to.equal('ESCP_ERR_PROTOCOL')
      expect(fatal.message).to.match(/'f1\.txt', which came in another record too/)
      await peer.close()
      expect(entries(dest).filter((n) => !n.startsWith('.escp-'))).to.deep.equal([])
    })

    it('fails the session with ESCP_ERR_PROTOCOL for an Error report of a file its 1.4 bundle carried whole, before or after the bundle', async function () {
      for (const errorFirst of [true, false]) {
        const sub = path.join(dest, String(errorFirst))
        fs.mkdirSync(sub)
        const peer = await HostileSender.start(set, sub, opts({ streams: 1 }), 4)
        await peer.announce(announced())
        if (errorFirst) await peer.unreadable(1n, 'f1.txt')
        await peer.bundle(0n, small)
        if (!errorFirst) await peer.unreadable(1n, 'f1.txt')
        const fatal = await within(peer.fatal(), 10_000, "the server's Fatal")
        expect(fatal.code, `Error ${errorFirst ? 'before' : 'after'} the bundle`).to.equal('ESCP_ERR_PROTOCOL')
        expect(fatal.message).to.match(/error report for 'f1\.txt', which its bundle carried whole/)
        await peer.close()
        expect(leftoverTemps(sub)).to.deep.equal([])
      }
    })

    it('fails the session with ESCP_ERR_PROTOCOL for a 1.4 bundle with a status that is neither read nor unreadable, and writes none of its files', async function () {
      const peer = await HostileSender.start(set, dest, opts(), 4)
      await peer.announce(announced())
      await peer.bundle(0n, small, 0, { statuses: [0, 0, 7] })
      await peer.expectFatal(dest, /bundle whose file 2 has status 7/)
    })

    it('fails the session with ESCP_ERR_PROTOCOL for a 1.3-style bundle, without digests, in a 1.4 session', async function () {
      const peer = await HostileSender.start(set, dest, opts(), 4)
      await peer.announce(announced())
      const data = Buffer.concat(small)
      await peer.session.data[0].send({ type: protocol.RecordType.Bundle, flags: 0, rawLength: data.byteLength, fileId: 0n, offset: 3n }, data)
      await peer.expectFatal(dest, /bundle of \d+ bytes whose 3 files announce \d+ with their digests/)
    })

    it('fails a bundled file the receiver cannot put in place (a directory stands at its name) with EISDIR, and puts the others in place', async function () {
      const peer = await HostileSender.start(set, dest, opts(), 4, POSIX_SERVER)
      writeRandom(path.join(dest, 'f1.txt', 'keep.txt'), 10)
      await peer.announce(announced())
      await peer.bundle(0n, small)
      await peer.sessionEnd(3)
      await within(peer.finish(), 15_000, 'the end of the session')
      expect([0n, 1n, 2n].map((id) => peer.verdicts.get(id)?.ok)).to.deep.equal([true, false, true])
      expect(peer.verdicts.get(1n)?.error?.errnoName).to.match(/EISDIR|ENOTEMPTY|EEXIST/)
      expect(peer.verdicts.get(1n)?.error?.message).to.contain('f1.txt')
      expect(fs.readFileSync(path.join(dest, 'f0.txt'))).to.deep.equal(small[0])
      expect(fs.readdirSync(path.join(dest, 'f1.txt'))).to.deep.equal(['keep.txt'])
      expect(leftoverTemps(dest)).to.deep.equal([])
      await peer.close()
    })

    it('sends a receiver of protocol 1.2 no bundle, one of 1.3 bundles, and one of 1.4 bundles with digests: a tree of small files arrives whole and verified each way', async function () {
      const src = path.join(work, 'tree')
      for (let i = 0; i < 40; i++) writeRandom(path.join(src, `f${String(i).padStart(2, '0')}.bin`), 1000 + 37 * i)
      for (const minor of [2, 3, 4]) {
        const dst = path.join(work, `pulled-1.${minor}`)
        fs.mkdirSync(dst)
        // A 1.2 receiver fails the session on a bundle (the next test): none may come.
        const pulled = await pullSpeaking(set, withDefaults(opts({ recursive: true, streams: 2 })), minor, src, dst, { server: 'node-fs', client: 'node-fs' })
        expect(pulled.ok, `as 1.${minor}`).to.equal(true)
        expect(pulled.result.failures).to.deep.equal([])
        expect(describeTree(path.join(dst, 'tree'))).to.deep.equal(describeTree(src))
        expect(leftoverTemps(dst)).to.deep.equal([])
      }
    })

    it('fails the session with ESCP_ERR_PROTOCOL for a bundle in a protocol 1.2 session', async function () {
      const peer = await HostileSender.start(set, dest, opts(), 2)
      await peer.announce(announced())
      await peer.bundle(0n, small)
      await peer.expectFatal(dest, /bundle record in a protocol 1\.2 session/)
    })
  })

  describe('a hostile receiver (runs of ok verdicts, protocol 1.4)', function () {
    /**
     * Pushes `src` to an in-process server that accepts the session, reads the sender's
     * announcements to the last, and answers as `answer` says; resolves to how the push ended.
     */
    async function pushToLiar(src: string, answer: (announced: bigint) => protocol.VerdictBatch): Promise<unknown> {
      const toServer = new PassThrough()
      const toClient = new PassThrough()
      let exited = (): void => {}
      const server: ServerProcess = { stdout: toClient, stdin: toServer, stderrTail: () => '', exited: new Promise((resolve) => (exited = () => resolve(0))), kill: () => exited() }
      toServer.on('finish', () => exited())
      const channel = new protocol.ControlChannel(toServer, toClient, { side: 'server' })
      const accepted = protocol.acceptServerSession(channel, set.registry, { software: 'a liar', defaultAddress: '127.0.0.1' })
      const pushed = push(server, { sources: [src], destination: path.join(work, 'nowhere'), options: opts({ recursive: true, streams: 1 }) }, '127.0.0.1').then(
        () => undefined,
        (err: unknown) => err,
      )
      const session = await accepted
      let announced = 0n
      for await (const rec of session.meta) {
        if (rec.type !== protocol.RecordType.FileBatch) continue
        const batch = protocol.decodeFileBatch(rec.payload)
        announced += BigInt(batch.files.length)
        if (!batch.last) continue
        const { verdicts, okRuns } = answer(announced)
        await session.meta.sendMessage(protocol.RecordType.Verdicts, protocol.encodeVerdicts(verdicts, okRuns))
        break
      }
      const outcome = await within(pushed, 15_000, 'the end of the push')
      for (const d of session.data) d.close()
      session.meta.close()
      channel.close()
      return outcome
    }

    it('fails the session with ESCP_ERR_PROTOCOL, at once, for a run of ok verdicts beyond the entries announced', async function () {
      const src = path.join(work, 'src')
      for (let i = 0; i < 5; i++) writeRandom(path.join(src, `f${i}`), 100)
      const err = (await pushToLiar(src, () => ({ verdicts: [], okRuns: [{ first: 0n, count: 2n ** 60n }] }))) as EscpError
      expect(err?.code).to.equal('ESCP_ERR_PROTOCOL')
      expect(err.message).to.match(/verdicts for entries 0 to \d+, of which only \d+ were announced/)
    })

    it('fails the session with ESCP_ERR_PROTOCOL for an entry answered both one by one and in a run', async function () {
      const src = path.join(work, 'src')
      for (let i = 0; i < 5; i++) writeRandom(path.join(src, `f${i}`), 100)
      const err = (await pushToLiar(src, () => ({ verdicts: [{ id: 2n, ok: true, digest: new Uint8Array(0) }], okRuns: [{ first: 0n, count: 3n }] }))) as EscpError
      expect(err?.code).to.equal('ESCP_ERR_PROTOCOL')
      expect(err.message).to.match(/a verdict for an entry already answered/)
    })
  })

  describe('a transfer hit mid-file', function () {
    const SIZE = 1024 * MiB
    const HIT_AFTER = 64 * MiB

    /** Copies a big file and calls `hit` once it is well under way; returns how the copy ended. */
    async function copyAndHit(hit: (port: number) => void): Promise<{ error: EscpError; msAfterHit: number; dest: string }> {
      const file = path.join(work, 'big.bin')
      makeSparse(file, SIZE)
      const dest = path.join(work, 'dest')
      fs.mkdirSync(dest)
      // node-fs cannot tell holes from data, so the sparse file is read and sent whole.
      const o = opts({ blockSizeBytes: MiB, streams: 4, engine: 'node-fs' })
      let hitAt = 0
      const run = copy({
        sources: [file],
        destination: dest,
        options: o,
        onProgress: (p) => {
          if (hitAt || p.bytesDone < HIT_AFTER) return
          hitAt = Date.now()
          hit(o.port as number)
        },
      })
      const outcome = await within(run.then((summary: TransferSummary) => ({ summary }), (error: EscpError) => ({ error })), 30_000, 'the end of the copy')
      expect(hitAt, 'the transfer was hit while in flight').to.be.greaterThan(0)
      if ('summary' in outcome) expect.fail(`the copy succeeded despite the hit: ${JSON.stringify(outcome.summary)}`)
      return { error: outcome.error, msAfterHit: Date.now() - hitAt, dest }
    }

    it('fails with a clear error, in bounded time, when one data stream is reset, and leaves no partial file', async function () {
      const why = await whyNoSocketReset()
      if (why) {
        skipBecause(this, `${why}`)
      }
      let killed: Connection | undefined
      const { error, msAfterHit, dest } = await copyAndHit((port) => {
        // The busiest connection is a data stream, not the quiet meta stream.
        killed = connectionsTo(port).sort((a, b) => b.bytesSent - a.bytesSent)[0]
        if (!killed) return
        execFileSync('ss', ['-K', 'dst', '127.0.0.1', 'dport', '=', `:${killed.remotePort}`, 'sport', '=', `:${killed.localPort}`], { stdio: 'ignore' })
      })
      expect(killed, 'a connection to kill').to.not.equal(undefined)
      expect(error.code, error.message).to.equal('ESCP_ERR_STREAM_CLOSED')
      expect(msAfterHit).to.be.lessThan(15_000)
      expect(entries(dest), 'no final name, no temporary file').to.deep.equal([])
    })

    it('fails with a clear error, in bounded time, when the receiver process is killed', async function () {
      let pids: number[] = []
      const { error, msAfterHit, dest } = await copyAndHit(() => {
        pids = childServers()
        for (const pid of pids) process.kill(pid, 'SIGKILL')
      })
      expect(pids).to.have.length(1)
      expect(error.code, error.message).to.be.oneOf(['ESCP_ERR_STREAM_CLOSED', 'ESCP_ERR_CONTROL_CLOSED'])
      expect(msAfterHit).to.be.lessThan(15_000)
      // A killed receiver cannot remove its temporary file; it must only never look complete.
      expect(entries(dest).filter((n) => !/^\.escp-[0-9a-f]+\.tmp$/.test(n))).to.deep.equal([])
    })
  })

  describe('files that cannot be read or written', function () {
    /** Runs copy() in a child process as an unprivileged user, for whom permissions hold. */
    function copyAsNobody(sources: string[], destination: string, options: Partial<TransferOptions>): CopyOutcome {
      const script = path.join(work, 'copy-as-nobody.js')
      fs.writeFileSync(script, COPY_SCRIPT, { mode: 0o644 })
      const r = spawnSync(process.execPath, [script, JSON.stringify({ sources, destination, options })], { uid: NOBODY, gid: NOBODY, cwd: work, encoding: 'utf8', timeout: 30_000 })
      if (r.status !== 0 || !r.stdout) throw new Error(`the copy as uid ${NOBODY} did not run (status ${r.status}, ${r.signal ?? 'no signal'}): ${r.stderr}`)
      return JSON.parse(r.stdout) as CopyOutcome
    }

    beforeEach(function () {
      // mkdtemp makes the work directory private to root.
      fs.chmodSync(work, 0o755)
    })

    it('reports an unreadable source file by name with EACCES and copies every other file, verified', async function () {
      const src = path.join(work, 'src')
      writeRandom(path.join(src, 'a.bin'), 100 * KiB)
      writeRandom(path.join(src, 'secret.bin'), 3 * BLOCK + 1)
      writeRandom(path.join(src, 'sub', 'c.bin'), 5 * BLOCK)
      writeRandom(path.join(src, 'z.bin'), 10)
      fs.chmodSync(path.join(src, 'secret.bin'), 0o000)
      const dest = path.join(work, 'dest')
      fs.mkdirSync(dest)
      fs.chownSync(dest, NOBODY, NOBODY)

      const { summary, error } = copyAsNobody([src], dest, opts({ recursive: true }))
      expect(error, JSON.stringify(error)).to.equal(undefined)
      expect(summary?.ok).to.equal(false)
      expect(summary?.failures.map((f) => [f.path, f.error.code, f.error.errno])).to.deep.equal([[path.join(src, 'secret.bin'), 'ESCP_ERR_IO', 'EACCES']])
      expect(summary?.entriesOk).to.equal((summary?.entries ?? 0) - 1)
      const expected = describeTree(src)
      expected.delete('secret.bin')
      expect(describeTree(path.join(dest, 'src'))).to.deep.equal(expected)
      expect(leftoverTemps(dest)).to.deep.equal([])
    })

    it('copies a tree of small files as an unprivileged user with the posix engine, each put in place whole, some over files already there', async function () {
      const src = path.join(work, 'src')
      for (let i = 0; i < 30; i++) writeRandom(path.join(src, `d${i % 3}`, `f${i}.bin`), 500 + 211 * i)
      const dest = path.join(work, 'dest')
      writeRandom(path.join(dest, 'src', 'd0', 'f0.bin'), 7)
      fs.mkdirSync(path.join(dest, 'src', 'd1'))
      fs.symlinkSync('/etc/hostname', path.join(dest, 'src', 'd1', 'f1.bin'))
      execFileSync('chown', ['-R', `${NOBODY}:${NOBODY}`, dest])
      fs.chmodSync(path.join(src, 'd0', 'f3.bin'), 0o604)
      fs.chmodSync(path.join(src, 'd1', 'f4.bin'), 0o754)
      fs.utimesSync(path.join(src, 'd2', 'f5.bin'), new Date(1_500_000_000_000), new Date(1_500_000_000_000))
      const posix = require.resolve('@escp/engine-posix')
      const { summary, error } = copyAsNobody([src], dest, opts({ recursive: true, preserve: true, plugins: [posix], engine: 'posix' }))
      expect(error, JSON.stringify(error)).to.equal(undefined)
      expect(summary?.failures, JSON.stringify(summary?.failures)).to.deep.equal([])
      expect(describeTree(path.join(dest, 'src'), true)).to.deep.equal(describeTree(src, true))
      expect(fs.statSync(path.join(dest, 'src', 'd0', 'f3.bin')).uid).to.equal(NOBODY)
      expect(leftoverTemps(dest)).to.deep.equal([])
    })

    it('reports an unreadable small file sent in a bundle by name with EACCES, and verifies the files sent with it', async function () {
      const src = path.join(work, 'src')
      for (const name of ['a.txt', 'b.txt', 'c.txt', 'd.txt']) writeRandom(path.join(src, name), 2 * KiB)
      fs.chmodSync(path.join(src, 'b.txt'), 0o000)
      const dest = path.join(work, 'dest')
      fs.mkdirSync(dest)
      fs.chownSync(dest, NOBODY, NOBODY)

      const { summary, error } = copyAsNobody([src], dest, opts({ recursive: true, streams: 1 }))
      expect(error, JSON.stringify(error)).to.equal(undefined)
      expect(summary?.failures.map((f) => [f.path, f.error.code, f.error.errno])).to.deep.equal([[path.join(src, 'b.txt'), 'ESCP_ERR_IO', 'EACCES']])
      expect(summary?.entriesOk).to.equal(4)
      const expected = describeTree(src)
      expected.delete('b.txt')
      expect(describeTree(path.join(dest, 'src'))).to.deep.equal(expected)
      expect(leftoverTemps(dest)).to.deep.equal([])
    })

    it('reports a destination it may not write with EACCES, naming it, and writes nothing', async function () {
      const src = path.join(work, 'src')
      writeRandom(path.join(src, 'a.bin'), 100 * KiB)
      writeRandom(path.join(src, 'sub', 'b.bin'), 10)
      const dest = path.join(work, 'dest')
      fs.mkdirSync(dest, { mode: 0o555 })
      fs.chmodSync(dest, 0o555)

      for (const sources of [[src], [path.join(src, 'a.bin')]]) {
        const { summary, error } = copyAsNobody(sources, dest, opts({ recursive: true }))
        const failures = summary ? summary.failures.map((f) => f.error) : [error as PlainError]
        expect(summary?.ok ?? false).to.equal(false)
        expect(failures.length).to.be.greaterThan(0)
        for (const f of failures) {
          expect(f.errno, f.message).to.equal('EACCES')
          expect(f.message).to.contain(dest)
        }
      }
      expect(entries(dest)).to.deep.equal([])
    })

    it('fails a file the receiver cannot put in place with its name and errno, and copies the others', async function () {
      const src = path.join(work, 'src')
      for (const name of ['a.bin', 'clash.bin', 'z.bin']) writeRandom(path.join(src, name), 2 * BLOCK + 3)
      const dest = path.join(work, 'dest')
      // A directory already stands where a file is to go: rename(2) fails with EISDIR.
      writeRandom(path.join(dest, 'src', 'clash.bin', 'keep.txt'), 10)

      const summary = await copy({ sources: [src], destination: dest, options: opts({ recursive: true }) })
      expect(summary.ok).to.equal(false)
      expect(summary.failures.map((f) => [f.path, f.error.code, f.error.errno])).to.deep.equal([[path.join(src, 'clash.bin'), 'ESCP_ERR_IO', 'EISDIR']])
      expect(summary.failures[0].error.message).to.contain('clash.bin')
      for (const name of ['a.bin', 'z.bin']) expect(sha256File(path.join(dest, 'src', name))).to.equal(sha256File(path.join(src, name)))
      expect(entries(path.join(dest, 'src', 'clash.bin'))).to.deep.equal(['keep.txt'])
      expect(leftoverTemps(dest)).to.deep.equal([])
    })
  })
})

interface PlainError {
  code: string
  errno?: string
  syscall?: string
  message: string
}

interface CopyOutcome {
  summary?: Omit<TransferSummary, 'failures' | 'warnings'> & { failures: Array<{ path: string; error: PlainError }> }
  error?: PlainError
}

/** Runs in the unprivileged child: one copy(), its outcome as JSON on stdout. */
const COPY_SCRIPT = `
const { copy } = require(${JSON.stringify(CORE_MAIN)})
const plain = (e) => ({ code: e.code, errno: e.errno, syscall: e.syscall, message: e.message })
copy(JSON.parse(process.argv[2])).then(
  (s) => console.log(JSON.stringify({ summary: { ...s, failures: s.failures.map((f) => ({ path: f.path, error: plain(f.error) })), warnings: [] } })),
  (e) => console.log(JSON.stringify({ error: plain(e) })),
)
`

/** A sparse file: the sender reads it fast, so a transfer of it is surely in flight when hit. */
function makeSparse(file: string, sizeBytes: number): void {
  const fd = fs.openSync(file, 'w')
  fs.writeSync(fd, Buffer.from('start'), 0, undefined, 0)
  fs.ftruncateSync(fd, sizeBytes)
  fs.closeSync(fd)
}

interface Connection {
  localPort: number
  remotePort: number
  bytesSent: number
}

/** This host's TCP connections to a port in [firstPort, firstPort + 10): the client's ends. */
function connectionsTo(firstPort: number): Connection[] {
  const out = execFileSync('ss', ['-tnHOi', 'state', 'established', 'dst', '127.0.0.1'], { encoding: 'utf8' })
  const found: Connection[] = []
  for (const line of out.split('\n')) {
    const m = /127\.0\.0\.1:(\d+)\s+127\.0\.0\.1:(\d+)/.exec(line)
    if (!m) continue
    const [localPort, remotePort] = [Number(m[1]), Number(m[2])]
    if (remotePort < firstPort || remotePort >= firstPort + 10) continue
    found.push({ localPort, remotePort, bytesSent: Number(/bytes_sent:(\d+)/.exec(line)?.[1] ?? 0) })
  }
  return found
}

/** Why `ss -K` cannot reset a loopback connection here, or null when it can. */
async function whyNoSocketReset(): Promise<string | null> {
  const server = net.createServer((s) => s.on('error', () => {}))
  // Any free port: a fixed one may be held as the local port of someone's outgoing connection.
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as net.AddressInfo
  const client = net.connect(port, '127.0.0.1')
  client.on('error', () => {})
  try {
    await once(client, 'connect')
    const closed = new Promise<boolean>((resolve) => client.once('close', () => resolve(true)))
    const r = spawnSync('ss', ['-K', 'dst', '127.0.0.1', 'dport', '=', `:${port}`], { encoding: 'utf8' })
    if (r.error) return `ss cannot run: ${r.error.message}`
    const reset = await Promise.race([closed, new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 1000))])
    return reset ? null : `ss -K did not reset a loopback connection (${r.stderr.trim() || 'no message'}): it needs CAP_NET_ADMIN and a kernel with CONFIG_INET_DIAG_DESTROY`
  } finally {
    client.destroy()
    server.close()
  }
}

/** The loopback servers this process started (copy() spawns them out of sight). */
function childServers(): number[] {
  const pids: number[] = []
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8')
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
      if (ppid === process.pid && fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').includes('server-main.js')) pids.push(Number(d))
    } catch {
      // It exited while we looked.
    }
  }
  return pids
}

/** A file the receiver refused: a failed verdict, or the whole session, with ESCP_ERR_PROTOCOL. */
async function expectRefusedFile(peer: HostileSender, id: bigint): Promise<void> {
  await peer.waitVerdicts(1)
  const v = peer.verdicts.get(id)
  if (v) {
    expect(v.ok).to.equal(false)
    expect(v.error?.code).to.equal('ESCP_ERR_PROTOCOL')
  } else {
    expect((await within(peer.fatal(), 10_000, "the server's Fatal")).code).to.equal('ESCP_ERR_PROTOCOL')
  }
}

