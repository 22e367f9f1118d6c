// Where the native module cannot load, the engine says why and 'auto' picks node-fs.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { expect } from 'chai'
import { skipBecause } from '@escp/core/testing'

const pkg = path.join(__dirname, '..')

describe('posix engine without its native module', function () {
  let dir: string

  before(function () {
    if (!fs.existsSync(path.join(pkg, 'dist', 'index.js'))) skipBecause(this, 'the package is not built (npm run build)')
    // The package as installed where the native build failed: its JavaScript, no build/.
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'escp-posix-unbuilt-'))
    fs.cpSync(path.join(pkg, 'dist'), path.join(dir, 'dist'), { recursive: true })
    fs.copyFileSync(path.join(pkg, 'package.json'), path.join(dir, 'package.json'))
    fs.symlinkSync(path.join(pkg, '..', '..', 'node_modules'), path.join(dir, 'node_modules'))
  })

  after(function () {
    if (dir) fs.rmSync(dir, { recursive: true, force: true })
  })

  it('reports itself unavailable with the reason, and auto falls back to node-fs', function () {
    const script = `
      require('reflect-metadata')
      const { PosixEngine } = require('./dist')
      const { loadPlugins } = require('@escp/core')
      loadPlugins({ plugins: [require.resolve('./dist')] }).then(({ registry }) => {
        const entry = registry.list('engine').find((e) => e.name === 'posix')
        console.log(JSON.stringify({ direct: new PosixEngine().available(), listed: entry.availability, auto: registry.resolve('engine', 'auto').name }))
      })`
    const out = JSON.parse(execFileSync(process.execPath, ['-e', script], { cwd: dir, encoding: 'utf8' })) as {
      direct: { ok: boolean; reason?: string }
      listed: { ok: boolean; reason?: string }
      auto: string
    }
    expect(out.direct.ok).to.equal(false)
    expect(out.direct.reason).to.match(/native module did not load .*npm run build/)
    expect(out.listed).to.deep.equal(out.direct)
    expect(out.auto).to.equal('node-fs')
  })
})
