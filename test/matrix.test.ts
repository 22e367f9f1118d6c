// The end-to-end matrix: a table of cases (flags, engine, cipher, checksum), each copying the
// same small tree in loopback mode and checked by content hash, and by metadata where -p asks.
// Every case loads the engine packages the escp command ships, so 'auto' is what users get.
import fs from 'node:fs'
import path from 'node:path'
import { expect } from 'chai'
import { copy, loadPlugins } from '@escp/core'
import type { PluginEntry } from '@escp/core'
import type { TransferOptions } from '@escp/core'
import { describeTree, tempDir, writeRandom } from './helpers/trees'
import { skipBecause } from '@escp/core/testing'

interface Case {
  name: string
  options: Partial<TransferOptions>
}

const CIPHERS = ['aes-128-gcm', 'aes-256-gcm', 'chacha20-poly1305']
const CHECKSUMS = ['xxh64', 'blake3', 'sha256', 'none']
const FLAG_SETS: Case[] = [
  { name: '-p', options: { preserve: true } },
  { name: '-C', options: { compressor: 'zstd' } },
  { name: '--sparse', options: { sparse: true } },
  { name: '--nodirect', options: { direct: false } },
  { name: '-p -C --sparse, 1 stream', options: { preserve: true, compressor: 'zstd', sparse: true, streams: 1 } },
  { name: '8 streams, 64 KiB blocks', options: { streams: 8, blockSizeBytes: 64 * 1024 } },
  { name: 'engine node-fs::node-fs', options: { engine: 'node-fs::node-fs' } },
  { name: 'engine posix, -p --sparse', options: { engine: 'posix', preserve: true, sparse: true } },
  { name: 'engine posix --nodirect, -C', options: { engine: 'posix', direct: false, compressor: 'zstd' } },
  { name: 'engine uring, -p', options: { engine: 'uring', preserve: true } },
  { name: 'engine uring --nodirect, --sparse', options: { engine: 'uring', direct: false, sparse: true } },
  { name: 'engine posix::uring, 64 KiB blocks', options: { engine: 'posix::uring', blockSizeBytes: 64 * 1024 } },
  { name: 'engine uring::node-fs, -p', options: { engine: 'uring::node-fs', preserve: true } },
  { name: 'engine node-fs::posix, -p', options: { engine: 'node-fs::posix', preserve: true } },
]
const SHIPPED = ['@escp/engine-posix', '@escp/engine-uring'].map((name) => require.resolve(name))
const CASES: Case[] = [
  ...CIPHERS.flatMap((cipher) => CHECKSUMS.map((checksum) => ({ name: `${cipher} × ${checksum}`, options: { cipher, checksum } }))),
  ...FLAG_SETS,
]

describe('end-to-end matrix (loopback)', function () {
  this.timeout(60_000)
  let work: string
  let src: string
  let port = 32000 + (process.pid % 1000) * 10
  let engines: PluginEntry[]

  before(async function () {
    engines = (await loadPlugins({ plugins: SHIPPED })).registry.list('engine')
    work = tempDir('matrix')
    src = path.join(work, 'src')
    writeRandom(path.join(src, 'blocks.bin'), 3 * 1024 * 1024 + 17)
    writeRandom(path.join(src, 'sub', 'small.bin'), 999)
    fs.writeFileSync(path.join(src, 'sub', 'text.log'), 'GET / 200\n'.repeat(20_000))
    fs.writeFileSync(path.join(src, 'empty'), '')
    const holes = path.join(src, 'holes.bin')
    fs.writeFileSync(holes, 'head')
    fs.appendFileSync(holes, Buffer.alloc(2 * 1024 * 1024))
    fs.appendFileSync(holes, 'tail')
    fs.mkdirSync(path.join(src, 'emptydir'))
    fs.symlinkSync('sub/small.bin', path.join(src, 'link'))
    fs.chmodSync(path.join(src, 'sub', 'small.bin'), 0o640)
    fs.utimesSync(path.join(src, 'blocks.bin'), new Date('2020-01-01'), new Date('2021-06-01'))
  })
  after(function () {
    fs.rmSync(work, { recursive: true, force: true })
  })

  for (const c of CASES) {
    it(c.name, async function () {
      for (const e of (c.options.engine ?? '').split('::').filter((x) => x !== '')) {
        const a = engines.find((x) => x.name === e)?.availability
        if (a && !a.ok) skipBecause(this, `engine '${e}' is unavailable here: ${a.reason}`)
      }
      port += 10
      const dst = path.join(work, `dst-${CASES.indexOf(c)}`)
      const summary = await copy({ sources: [src], destination: dst, options: { recursive: true, port, plugins: SHIPPED, ...c.options } })
      expect(summary.failures).to.deep.equal([])
      expect(summary.ok).to.equal(true)
      expect(describeTree(dst, c.options.preserve === true)).to.deep.equal(describeTree(src, c.options.preserve === true))
      // The middle 1 MiB block is all zeros: with --sparse it stays a hole (written, the file would use 2 MiB + 8 bytes).
      if (c.options.sparse) expect(fs.statSync(path.join(dst, 'holes.bin')).blocks * 512).to.be.lessThan(1.5 * 1024 * 1024)
      fs.rmSync(dst, { recursive: true, force: true })
    })
  }
})
