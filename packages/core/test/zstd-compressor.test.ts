// The zstd compressor beyond its contract's suite: a machine where zstd-napi's native module
// cannot load, and zstd failures that are not "the block would not shrink".
import path from 'node:path'
import { Worker } from 'node:worker_threads'
import { expect } from 'chai'
import { ZstdCompressor } from '@escp/core/builtin'
import { expectCode, logLikeText } from '@escp/core/testing'

const CORE = path.dirname(require.resolve('@escp/core/package.json'))

describe('zstd compressor', function () {
  it('is listed as unavailable, with the load error, where zstd-napi cannot load', async function () {
    // A fresh thread without its own copy of the native module: zstd-napi's binding is made to
    // fail as a binary built for another Node.js fails, and everything else loads normally.
    const report = await new Promise<Record<string, unknown>>((resolve, reject) => {
      const w = new Worker(
        `const Module = require('node:module')
         const load = Module._load
         Module._load = function (request, ...rest) {
           if (request === 'zstd-napi/binding') throw new Error('binding.node was compiled against a different Node.js version')
           return load.call(this, request, ...rest)
         }
         const { parentPort } = require('node:worker_threads')
         require(${JSON.stringify(CORE)}).loadPlugins().then(
           ({ registry }) => {
             let code
             try { registry.resolve('compressor', 'zstd') } catch (e) { code = e.code }
             const none = registry.resolve('compressor', 'none')
             parentPort.postMessage({
               zstd: registry.list('compressor').find((e) => e.name === 'zstd').availability,
               resolveCode: code,
               noneWorks: none.decompress(Buffer.from('abc'), Buffer.alloc(3)) === 3,
             })
           },
           (e) => parentPort.postMessage({ error: e.message }))`,
        { eval: true, execArgv: [] },
      )
      w.once('message', resolve)
      w.once('error', reject)
    })
    expect(report.error).to.equal(undefined)
    expect(report.zstd).to.have.property('ok', false)
    expect((report.zstd as { reason: string }).reason).to.contain('compiled against a different Node.js version')
    expect(report.resolveCode).to.equal('ESCP_ERR_PLUGIN_UNAVAILABLE')
    expect(report.noneWorks).to.equal(true)
  })

  it('reports "would not shrink" when the destination is too small, and keeps working after it', function () {
    const zstd = new ZstdCompressor()
    const src = logLikeText(65536)
    expect(zstd.compress(src, Buffer.alloc(8), 1)).to.equal(null)
    const packed = Buffer.alloc(src.byteLength)
    const n = zstd.compress(src, packed, 5) as number
    expect(n).to.be.a('number').and.lessThan(src.byteLength)
    const out = Buffer.alloc(src.byteLength)
    expect(zstd.decompress(packed.subarray(0, n), out)).to.equal(src.byteLength)
    expect(out.equals(src)).to.equal(true)
  })

  it('throws ESCP_ERR_COMPRESSOR for a failure other than running out of room, rather than sending raw', async function () {
    // An argument zstd-napi rejects is the one such failure that can be provoked here; running
    // out of memory takes the same path.
    const zstd = new ZstdCompressor()
    const err = (await expectCode(() => zstd.compress('not bytes' as unknown as Uint8Array, Buffer.alloc(1024)), 'ESCP_ERR_COMPRESSOR')) as Error
    expect(err.message).to.contain('zstd').and.contain('Invalid argument')
  })
})
