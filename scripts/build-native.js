#!/usr/bin/env node
// Builds the native modules (packages with a binding.gyp: the engines, and the core's in-place
// AEAD) when their module is missing or older than its sources. A package that cannot build does
// not stop the build: its engine then reports itself unavailable, with the reason, and escp uses
// another (the core's ciphers fall back to node:crypto).
'use strict'
const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const root = path.join(__dirname, '..')
const packagesDir = path.join(root, 'packages')

function newestMtimeMs(dir, only = () => true) {
  let newest = 0
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name)
    if (entry.isDirectory()) newest = Math.max(newest, newestMtimeMs(p, only))
    else if (only(entry.name)) newest = Math.max(newest, fs.statSync(p).mtimeMs)
  }
  return newest
}

// The newest source of a package's native code: the addon's C++ (native/), and a C library
// beside it (include/, and the C files among the TypeScript of src/).
function newestNativeSourceMs(pkg) {
  const isC = (f) => /\.[ch]$/.test(f)
  const dirs = [['native', () => true], ['include', () => true], ['src', isC]]
  return Math.max(...dirs.map(([d, only]) => (fs.existsSync(path.join(pkg, d)) ? newestMtimeMs(path.join(pkg, d), only) : 0)))
}

function builtModule(pkg) {
  const release = path.join(pkg, 'build', 'Release')
  if (!fs.existsSync(release)) return undefined
  const node = fs.readdirSync(release).find((f) => f.endsWith('.node'))
  return node ? path.join(release, node) : undefined
}

let failed = 0
for (const name of fs.readdirSync(packagesDir).sort()) {
  const pkg = path.join(packagesDir, name)
  const gyp = path.join(pkg, 'binding.gyp')
  if (!fs.existsSync(gyp)) continue
  const built = builtModule(pkg)
  const sources = Math.max(fs.statSync(gyp).mtimeMs, newestNativeSourceMs(pkg))
  if (built && fs.statSync(built).mtimeMs >= sources) continue
  console.log(`build-native: building ${name}`)
  const r = spawnSync('npm', ['run', 'build:native', '--silent'], { cwd: pkg, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' })
  if (r.status !== 0) {
    failed++
    const errors = `${r.stdout}\n${r.stderr}`.split('\n').filter((l) => /error/i.test(l)).slice(0, 8).join('\n')
    console.warn(`build-native: ${name} did not build; its engine will report itself unavailable.\n${errors}`)
  }
}
if (failed > 0 && process.env.ESCP_REQUIRE_NATIVE === '1') process.exit(1)
