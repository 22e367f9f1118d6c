// Where io_uring cannot run (turned off, refused by the kernel, or the native module missing),
// the engine says why, asking for it by name fails with that reason, and 'auto' picks another.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { expect } from 'chai'
import { skipBecause } from '@escp/core/testing'

const pkg = path.join(__dirname, '..')
const root = path.join(pkg, '..', '..')

interface Outcome {
  direct: { ok: boolean; reason?: string }
  listed: { ok: boolean; reason?: string }
  auto: string
  byName: { code: string; message: string }
}

/** In a child process: the engine's availability, as itself and through the plugin registry. */
function probe(pluginDir: string, env: NodeJS.ProcessEnv = {}): Outcome {
  const script = `
    const { UringEngine } = require(${JSON.stringify(path.join(pluginDir, 'dist'))})
    const { loadPlugins } = require('@escp/core')
    loadPlugins({ plugins: [${JSON.stringify(path.join(pluginDir, 'dist', 'index.js'))}, '@escp/engine-posix'] }).then(({ registry }) => {
      const entry = registry.list('engine').find((e) => e.name === 'uring')
      let byName
      try { registry.resolve('engine', 'uring') } catch (err) { byName = { code: err.code, message: err.message } }
      console.log(JSON.stringify({ direct: new UringEngine().available(), listed: entry.availability, auto: registry.resolve('engine', 'auto').name, byName }))
    })`
  return JSON.parse(execFileSync(process.execPath, ['-e', script], { cwd: root, env: { ...process.env, ...env }, encoding: 'utf8' })) as Outcome
}

describe('uring engine where io_uring cannot run', function () {
  this.timeout(30_000)

  before(function () {
    if (!fs.existsSync(path.join(pkg, 'dist', 'index.js'))) skipBecause(this, 'the package is not built (npm run build)')
  })

  it(`is turned off by ESCP_URING_DISABLE=1: unavailable with the reason, and 'auto' picks another engine`, function () {
    const out = probe(pkg, { ESCP_URING_DISABLE: '1' })
    expect(out.direct).to.deep.equal({ ok: false, reason: 'io_uring is turned off by ESCP_URING_DISABLE=1' })
    expect(out.listed).to.deep.equal(out.direct)
    expect(out.byName.code).to.equal('ESCP_ERR_PLUGIN_UNAVAILABLE')
    expect(out.byName.message).to.contain("the engine 'uring' cannot be used on this machine: io_uring is turned off by ESCP_URING_DISABLE=1")
    expect(out.auto).to.be.oneOf(['posix', 'node-fs'])
  })

  it('names the errno when the kernel refuses a ring (EPERM: io_uring_disabled or seccomp)', function () {
    const out = probe(pkg, { ESCP_URING_DISABLE: 'EPERM' })
    expect(out.direct.ok).to.equal(false)
    expect(out.direct.reason).to.match(/^io_uring_setup failed with EPERM: io_uring is not permitted here \((kernel\.io_uring_disabled is \d|a seccomp profile .* blocks it)\)/)
    expect(out.byName.message).to.contain('EPERM')
    expect(out.auto).to.be.oneOf(['posix', 'node-fs'])
  })

  it('says why without its native module, as where the build failed', function () {
    // The package as installed where the native build failed: its JavaScript, no build/.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'escp-uring-unbuilt-'))
    try {
      fs.cpSync(path.join(pkg, 'dist'), path.join(dir, 'dist'), { recursive: true })
      fs.copyFileSync(path.join(pkg, 'package.json'), path.join(dir, 'package.json'))
      fs.symlinkSync(path.join(root, 'node_modules'), path.join(dir, 'node_modules'))
      const out = probe(dir)
      expect(out.direct.ok).to.equal(false)
      expect(out.direct.reason).to.match(/native module did not load .*npm run build/)
      expect(out.listed).to.deep.equal(out.direct)
      expect(out.auto).to.be.oneOf(['posix', 'node-fs'])
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})
