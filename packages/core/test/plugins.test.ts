// The plugin system as users meet it: built-ins listed with their availability, names resolved
// with clear errors, third-party plugins found through ESCP_PLUGINS, broken plugins refused.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { Worker } from 'node:worker_threads'
import { expect } from 'chai'
import { ESCP_PLUGIN_API_VERSION, PluginRegistry, checkPluginOptions, combineDigests, loadPluginSet, loadPlugins, parsePluginOption, pluginOptionsFromEnv, pluginsFromEnv } from '@escp/core'
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

describe('plugin options', function () {
  it('reads NAME=VALUE as the command line gives it: plain decimals as numbers, true/false as booleans', function () {
    expect(['depth=64', 'ratio=-0.5', 'on=true', 'off=false', 'hex=0x10', 'exp=1e3', 'pad= 5', 'empty=', 'eq=a=b'].map(parsePluginOption)).to.deep.equal([
      ['depth', 64], ['ratio', -0.5], ['on', true], ['off', false], ['hex', '0x10'], ['exp', '1e3'], ['pad', ' 5'], ['empty', ''], ['eq', 'a=b'],
    ])
  })

  it('refuses an option that is not NAME=VALUE, and values that are not plain', async function () {
    await expectCode(() => parsePluginOption('depth'), 'ESCP_ERR_BAD_ARGUMENT')
    await expectCode(() => parsePluginOption('=5'), 'ESCP_ERR_BAD_ARGUMENT')
    for (const bad of [[], null, 'x', { n: NaN }, { n: Infinity }, { o: {} }, { a: [1] }]) await expectCode(() => checkPluginOptions(bad, 'test'), 'ESCP_ERR_BAD_ARGUMENT')
  })

  it('reads ESCP_PLUGIN_OPTIONS as a JSON object, and refuses anything else', async function () {
    expect(pluginOptionsFromEnv({ ESCP_PLUGIN_OPTIONS: '{"uringQueueDepth": 128, "x": "y"}' })).to.deep.equal({ uringQueueDepth: 128, x: 'y' })
    expect(pluginOptionsFromEnv({})).to.deep.equal({})
    for (const bad of ['nope', '[1]', '"ab"', '{"a": null}']) await expectCode(() => pluginOptionsFromEnv({ ESCP_PLUGIN_OPTIONS: bad }), 'ESCP_ERR_BAD_ARGUMENT')
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

  it('loads a plugin that is an ES module, by its .mjs name or as a package of type module', async function () {
    const source = (name: string) =>
      `import { createRequire } from 'node:module'\n` +
      `const core = createRequire(import.meta.url)(${JSON.stringify(CORE)})\n` +
      `export const manifest = ${JSON.stringify({ name, escpApi: '^1', provides: { checksum: [name] } })}\n` +
      `export function register(container) {\n` +
      `  container.register(core.CHECKSUM, { useValue: { name: ${JSON.stringify(name)}, digestLengthBytes: 1, available: () => ({ ok: true }), block: () => new Uint8Array(1), combiner: () => ({ push() {}, digest: () => new Uint8Array(1) }) } })\n` +
      `}\n`
    const mjs = path.join(tmp, 'esm-one.mjs')
    fs.writeFileSync(mjs, source('esm-one'))
    const pkg = path.join(tmp, 'esm-two')
    fs.mkdirSync(pkg)
    fs.writeFileSync(path.join(pkg, 'package.json'), JSON.stringify({ name: 'esm-two', type: 'module', main: 'index.js' }))
    fs.writeFileSync(path.join(pkg, 'index.js'), source('esm-two'))
    const { registry } = await loadPlugins({ plugins: [mjs, pkg] })
    expect(registry.list('checksum').filter((e) => e.name.startsWith('esm-')).map((e) => `${e.plugin}:${e.name}`)).to.deep.equal(['esm-one:esm-one', 'esm-two:esm-two'])
  })

  it('refuses a module that is not a plugin, and one that cannot be found', async function () {
    const file = path.join(tmp, 'not-a-plugin.js')
    fs.writeFileSync(file, 'exports.hello = 1\n')
    await expectCode(() => loadPlugins({ plugins: [file] }), 'ESCP_ERR_PLUGIN_INVALID')
    await expectCode(() => loadPlugins({ plugins: ['escp-plugin-that-does-not-exist'] }), 'ESCP_ERR_PLUGIN_LOAD')
    // A module that resolves but cannot be loaded: the reason in one line.
    const broken = path.join(tmp, 'broken.js')
    fs.writeFileSync(broken, "require('./nowhere-at-all')\n")
    const err = (await expectCode(() => loadPlugins({ plugins: [broken] }), 'ESCP_ERR_PLUGIN_LOAD')) as Error
    expect(err.message).to.contain('nowhere-at-all').and.not.contain('\n')
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

  it('attributes each name to the plugin that registered it, not to one that only declares it', async function () {
    const register = `container.register(core.CHECKSUM, { useValue: { name: 'x', available: () => ({ ok: true }) } })`
    const owner = writePlugin('owner', { name: 'escp-plugin-owner', escpApi: '^1', provides: { checksum: ['x'] } }, register)
    const claimant = writePlugin('claimant', { name: 'escp-plugin-claimant', escpApi: '^1', provides: { checksum: ['x'] } }, '')
    const err = (await expectCode(() => loadPlugins({ plugins: [owner, claimant] }), 'ESCP_ERR_PLUGIN_INVALID')) as Error
    expect(err.message).to.contain("plugin 'escp-plugin-claimant'").and.contain("checksum 'x'").and.contain('escp-plugin-owner')
    // The plugin that registers 'x' without declaring it cannot hide behind the claimant's manifest.
    const silent = writePlugin('silent', { name: 'escp-plugin-silent', escpApi: '^1', provides: {} }, register)
    const err2 = (await expectCode(() => loadPlugins({ plugins: [silent, claimant] }), 'ESCP_ERR_PLUGIN_INVALID')) as Error
    expect(err2.message).to.contain("plugin 'escp-plugin-silent'").and.contain("checksum named 'x'")
  })

  it('attributes registrations made with any of tsyringe\'s register methods, chained or not', async function () {
    const file = writePlugin(
      'every-method',
      { name: 'escp-plugin-every-method', escpApi: '^1', provides: { checksum: ['by-class', 'by-value', 'by-singleton', 'by-type'] } },
      `const make = (name) => class { constructor() { this.name = name } available() { return { ok: true } } }
       container
         .register(core.CHECKSUM, { useClass: make('by-class') })
         .registerInstance(core.CHECKSUM, { name: 'by-value', available: () => ({ ok: true }) })
       container.registerSingleton(core.CHECKSUM, make('by-singleton')).registerType(core.CHECKSUM, make('by-type'))`,
    )
    const set = await loadPlugins({ plugins: [file] })
    const mine = set.registry.list('checksum').filter((e) => e.name.startsWith('by-'))
    expect(mine.map((e) => [e.name, e.plugin])).to.deep.equal([
      ['by-class', 'escp-plugin-every-method'],
      ['by-value', 'escp-plugin-every-method'],
      ['by-singleton', 'escp-plugin-every-method'],
      ['by-type', 'escp-plugin-every-method'],
    ])
    expect(set.container.resolve(PluginRegistry)).to.equal(set.registry)
  })

  it('reports a constructor that throws under its own code, naming the plugin and the kind', async function () {
    const fine = writePlugin(
      'fine-engine',
      { name: 'escp-plugin-fine', escpApi: '^1', provides: { engine: ['fine'] } },
      `container.register(core.IO_ENGINE, { useValue: { name: 'fine', available: () => ({ ok: true }) } })`,
    )
    const tape = writePlugin(
      'tape-engine',
      { name: 'escp-plugin-tape', escpApi: '^1', provides: { engine: ['tape'] } },
      `container.register(core.IO_ENGINE, { useClass: class { constructor() { throw core.escpError('ESCP_ERR_IO', 'open', '/dev/st0', 'no such device') } } })`,
    )
    const err = (await expectCode(() => loadPlugins({ plugins: [fine, tape] }), 'ESCP_ERR_IO')) as Error
    expect(err.message).to.contain("plugin 'escp-plugin-tape'").and.contain('engine').and.contain("open '/dev/st0': no such device")
    expect(err.message).not.to.contain('escp-plugin-fine')
    expect(err.message).not.to.contain(fine)
  })

  it('reports a constructor that throws a plain error as a load error naming the plugin and the kind', async function () {
    const file = writePlugin(
      'throwing-checksum',
      { name: 'escp-plugin-throwing', escpApi: '^1', provides: { checksum: ['crc'] } },
      `container.register(core.CHECKSUM, { useClass: class { constructor() { throw new Error('no CPU support for crc') } } })`,
    )
    const err = (await expectCode(() => loadPlugins({ plugins: [file] }), 'ESCP_ERR_PLUGIN_LOAD')) as Error
    expect(err.message).to.contain("plugin 'escp-plugin-throwing'").and.contain('checksum').and.contain('no CPU support for crc')
    expect(err.message).not.to.contain('builtin')
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
