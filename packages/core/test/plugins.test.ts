// The plugin system as users meet it: built-ins listed with their availability, names resolved
// with clear errors, third-party plugins found through ESCP_PLUGINS, broken plugins refused.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { Worker } from 'node:worker_threads'
import { expect } from 'chai'
import { ESCP_PLUGIN_API_VERSION, combineDigests, loadPluginSet, loadPlugins, pluginsFromEnv } from '@escp/core'
import { checksumCompliance, expectCode } from '@escp/core/testing'

const CORE = path.dirname(require.resolve('@escp/core/package.json'))

describe('plugin registry', function () {
  it('lists every built-in with its availability', async function () {
    const { registry } = await loadPlugins()
    const listed = registry.list().map((e) => `${e.kind}:${e.name}`)
    expect(listed).to.include.members([
      'engine:node-fs', 'engine:dummy',
      'cipher:aes-128-gcm', 'cipher:aes-256-gcm', 'cipher:chacha20-poly1305',
      'compressor:none', 'compressor:zstd',
      'checksum:xxh64', 'checksum:blake3', 'checksum:sha256',
    ])
    for (const e of registry.list()) {
      expect(e.plugin).to.equal('@escp/core')
      expect(e.availability).to.deep.equal({ ok: true })
    }
  })

  it('names the plugins that exist when asked for one that does not', async function () {
    const { registry } = await loadPlugins()
    const err = (await expectCode(() => registry.resolve('cipher', 'rot13'), 'ESCP_ERR_UNKNOWN_PLUGIN')) as Error
    expect(err.message).to.contain("no cipher named 'rot13'")
    expect(err.message).to.contain('aes-128-gcm, aes-256-gcm, chacha20-poly1305')
  })
})

describe('third-party plugins', function () {
  let tmp: string

  before(function () {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'escp-plugins-'))
  })
  after(function () {
    fs.rmSync(tmp, { recursive: true, force: true })
  })

  // Writes a plugin module as a user would put one on disk; `body` is its register() body.
  function writePlugin(name: string, manifest: object, body: string): string {
    const file = path.join(tmp, `${name}.js`)
    fs.writeFileSync(
      file,
      `const core = require(${JSON.stringify(CORE)})\n` +
        `exports.manifest = ${JSON.stringify(manifest)}\n` +
        `exports.register = function (container, options) {\n${body}\n}\n`,
    )
    return file
  }

  it('finds a plugin package named in ESCP_PLUGINS and uses its checksum by name', async function () {
    const plugins = pluginsFromEnv({ ESCP_PLUGINS: ' escp-plugin-sha3 , ' })
    expect(plugins).to.deep.equal(['escp-plugin-sha3'])
    const { registry } = await loadPlugins({ plugins })
    const entry = registry.list('checksum').find((e) => e.name === 'sha3-256')
    expect(entry).to.deep.equal({ kind: 'checksum', name: 'sha3-256', plugin: 'escp-plugin-sha3', availability: { ok: true } })
    const sum = registry.resolve('checksum', 'sha3-256')
    const digest = combineDigests(sum, [sum.block(Buffer.from('abc'))])
    expect(Buffer.from(digest).toString('hex')).to.have.length(64)
  })

  it('loads the same plugin by path, relative to the working directory', async function () {
    const { registry } = await loadPlugins({ plugins: ['./test/fixtures/escp-plugin-sha3'], cwd: path.resolve(CORE, '../..') })
    expect(registry.has('checksum', 'sha3-256')).to.equal(true)
  })

  it('rebuilds the same plugins in a worker thread from the serializable spec', async function () {
    const set = await loadPlugins({ plugins: ['escp-plugin-sha3'], options: { note: 'kept' } })
    const names = await new Promise<string[]>((resolve, reject) => {
      const w = new Worker(
        `const { parentPort, workerData } = require('node:worker_threads')
         require(${JSON.stringify(CORE)}).loadPluginSet(workerData).then(
           (s) => parentPort.postMessage(s.registry.list().map((e) => e.kind + ':' + e.name)),
           (e) => parentPort.postMessage({ error: e.message }))`,
        { eval: true, workerData: set.spec },
      )
      w.once('message', (m) => (Array.isArray(m) ? resolve(m) : reject(new Error(m.error))))
      w.once('error', reject)
    })
    expect(names).to.deep.equal(set.registry.list().map((e) => `${e.kind}:${e.name}`))
    expect(names).to.include('checksum:sha3-256')
  })

  it('lists an unavailable plugin with its reason and refuses to use it', async function () {
    const file = writePlugin(
      'unavailable',
      { name: 'escp-plugin-tape', escpApi: '^1', provides: { engine: ['tape'] } },
      `container.register(core.IO_ENGINE, { useValue: { name: 'tape', available: () => ({ ok: false, reason: 'no tape drive at /dev/st0' }) } })`,
    )
    const { registry } = await loadPlugins({ plugins: [file] })
    expect(registry.list('engine').find((e) => e.name === 'tape')?.availability).to.deep.equal({ ok: false, reason: 'no tape drive at /dev/st0' })
    const err = (await expectCode(() => registry.resolve('engine', 'tape'), 'ESCP_ERR_PLUGIN_UNAVAILABLE')) as Error
    expect(err.message).to.contain('no tape drive at /dev/st0')
  })

  it('refuses a plugin written for another plugin API', async function () {
    const file = writePlugin('future', { name: 'escp-plugin-future', escpApi: '^2.0.0', provides: {} }, '')
    const err = (await expectCode(() => loadPlugins({ plugins: [file] }), 'ESCP_ERR_PLUGIN_API_MISMATCH')) as Error
    expect(err.message).to.contain('^2.0.0').and.contain(ESCP_PLUGIN_API_VERSION)
  })

  it('refuses a module that is not a plugin, and one that cannot be found', async function () {
    const file = path.join(tmp, 'not-a-plugin.js')
    fs.writeFileSync(file, 'exports.hello = 1\n')
    await expectCode(() => loadPlugins({ plugins: [file] }), 'ESCP_ERR_PLUGIN_INVALID')
    await expectCode(() => loadPlugins({ plugins: ['escp-plugin-that-does-not-exist'] }), 'ESCP_ERR_PLUGIN_LOAD')
  })

  it('refuses a manifest that does not match what the plugin registers', async function () {
    const liar = writePlugin('liar', { name: 'escp-plugin-liar', escpApi: '^1', provides: { checksum: ['crc99'] } }, '')
    await expectCode(() => loadPlugins({ plugins: [liar] }), 'ESCP_ERR_PLUGIN_INVALID')
    const sneaky = writePlugin(
      'sneaky',
      { name: 'escp-plugin-sneaky', escpApi: '^1', provides: {} },
      `container.register(core.CHECKSUM, { useValue: { name: 'hidden', available: () => ({ ok: true }) } })`,
    )
    await expectCode(() => loadPlugins({ plugins: [sneaky] }), 'ESCP_ERR_PLUGIN_INVALID')
  })

  it('refuses two plugins that provide the same name', async function () {
    const dup = writePlugin(
      'dup',
      { name: 'escp-plugin-dup', escpApi: '^1', provides: { cipher: ['aes-128-gcm'] } },
      `container.register(core.CIPHER, { useValue: { name: 'aes-128-gcm', available: () => ({ ok: true }) } })`,
    )
    await expectCode(() => loadPlugins({ plugins: [dup] }), 'ESCP_ERR_PLUGIN_DUPLICATE')
  })

  it('reports a register() that throws as a load error naming the plugin', async function () {
    const file = writePlugin('throws', { name: 'escp-plugin-throws', escpApi: '^1', provides: {} }, `throw new Error('boom')`)
    const err = (await expectCode(() => loadPluginSet({ modules: [file], options: {} }), 'ESCP_ERR_PLUGIN_LOAD')) as Error
    expect(err.message).to.contain('boom').and.contain(file)
  })
})

checksumCompliance('third-party sha3-256', async () => (await loadPlugins({ plugins: ['escp-plugin-sha3'] })).registry.resolve('checksum', 'sha3-256'), [
  { input: '', blockHex: 'a7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a' },
])
