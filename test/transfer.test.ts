// Copies in loopback mode, as a user's library call makes them: a real child receiver, real
// encrypted TCP streams on loopback, real files.
import { execFileSync, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { expect } from 'chai'
import { copy } from '@escp/core'
import type { TransferOptions } from '@escp/core'
import { describeTree, leftoverTemps, sha256File, tempDir, writeRandom } from './helpers/trees'
import { skipBecause } from '@escp/core/testing'

const KiB = 1024
const BLOCK = 64 * KiB
let nextPort = 26000 + (process.pid % 1000) * 10

function opts(extra: Partial<TransferOptions> = {}): Partial<TransferOptions> {
  nextPort += 10
  return { blockSizeBytes: BLOCK, port: nextPort, portRange: 10, ...extra }
}

describe('loopback transfer', function () {
  this.timeout(120_000)
  let work: string

  beforeEach(function () {
    work = tempDir('xfer')
  })
  afterEach(function () {
    fs.rmSync(work, { recursive: true, force: true })
  })

  it('copies files of 0, 1, block-1, block and block+1 bytes, verified', async function () {
    const src = path.join(work, 'src')
    const sizes = [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 5 * BLOCK + 7]
    for (const s of sizes) writeRandom(path.join(src, `f${s}`), s)
    const dst = path.join(work, 'dst')
    fs.mkdirSync(dst)
    const summary = await copy({ sources: [src], destination: dst, options: opts({ recursive: true }) })
    expect(summary.failures).to.deep.equal([])
    expect(summary.ok).to.equal(true)
    expect(summary.entries).to.equal(sizes.length + 1)
    expect(describeTree(path.join(dst, 'src'))).to.deep.equal(describeTree(src))
    expect(leftoverTemps(dst)).to.deep.equal([])
  })

  it('spreads one file over every stream, with each cipher and checksum', async function () {
    for (const [cipher, checksum] of [['aes-256-gcm', 'blake3'], ['chacha20-poly1305', 'sha256'], ['aes-128-gcm', 'none']]) {
      const file = path.join(work, `big-${cipher}`)
      writeRandom(file, 3 * 1024 * KiB + 5)
      const dst = path.join(work, `copy-${cipher}`)
      const summary = await copy({ sources: [file], destination: dst, options: opts({ cipher, checksum, streams: 3 }) })
      expect(summary.ok, JSON.stringify(summary.failures)).to.equal(true)
      expect(summary.checksum).to.equal(checksum)
      expect(sha256File(dst)).to.equal(sha256File(file))
    }
  })

  it('compresses blocks that shrink and sends the rest raw', async function () {
    const src = path.join(work, 'mixed')
    fs.mkdirSync(src)
    fs.writeFileSync(path.join(src, 'text.log'), 'INFO request served in 12 ms\n'.repeat(40_000))
    writeRandom(path.join(src, 'random.bin'), 300 * KiB)
    const dst = path.join(work, 'out')
    const summary = await copy({ sources: [src], destination: dst, options: opts({ recursive: true, compressor: 'zstd' }) })
    expect(summary.ok).to.equal(true)
    expect(summary.wireBytes).to.be.lessThan(summary.bytes * 0.6)
    expect(describeTree(dst)).to.deep.equal(describeTree(src))
  })

  it('copies a tree with symlinks, empty directories, deep paths and awkward names', async function () {
    const src = path.join(work, 'tree')
    let deep = path.join(src, 'deep')
    for (let i = 0; i < 60; i++) deep = path.join(deep, `level${i}`)
    writeRandom(path.join(deep, 'bottom.bin'), 1000)
    for (const name of ['with space', 'ünïcødé ✓', 'new\nline', "quote's \"and\" $dollar;rm -rf", '-dash']) writeRandom(path.join(src, 'names', name), 100)
    fs.mkdirSync(path.join(src, 'empty', 'nested-empty'), { recursive: true })
    fs.symlinkSync('names/with space', path.join(src, 'rel-link'))
    fs.symlinkSync('/etc/hostname', path.join(src, 'abs-link'))
    fs.symlinkSync('does-not-exist', path.join(src, 'dangling'))
    // A name that is not UTF-8.
    fs.writeFileSync(Buffer.concat([Buffer.from(path.join(src, 'names') + '/'), Buffer.from([0x6c, 0xe9, 0xff])]), 'latin-1 name')
    const dst = path.join(work, 'dst')
    const summary = await copy({ sources: [src], destination: dst, options: opts({ recursive: true }) })
    expect(summary.failures).to.deep.equal([])
    expect(describeTree(dst)).to.deep.equal(describeTree(src))
  })

  it('keeps modes and times with preserve', async function () {
    const src = path.join(work, 'p')
    writeRandom(path.join(src, 'exec.sh'), 10)
    fs.chmodSync(path.join(src, 'exec.sh'), 0o751)
    fs.utimesSync(path.join(src, 'exec.sh'), new Date('2001-02-03T04:05:06Z'), new Date('2002-03-04T05:06:07Z'))
    fs.symlinkSync('exec.sh', path.join(src, 'link'))
    fs.lutimesSync(path.join(src, 'link'), 1_000_000_000.25, 1_100_000_000.987654)
    fs.chmodSync(src, 0o705)
    fs.utimesSync(src, 1_041_379_200.5, 1_072_915_200.123456)
    const dst = path.join(work, 'q')
    const summary = await copy({ sources: [src], destination: dst, options: opts({ recursive: true, preserve: true }) })
    expect(summary.ok).to.equal(true)
    expect(describeTree(dst, true)).to.deep.equal(describeTree(src, true))
    // Directories and symlinks to the microsecond, not the millisecond. (Reading the source
    // moves its atimes, so modification times are compared.)
    for (const name of ['', 'link']) {
      const [a, b] = [src, dst].map((root) => fs.lstatSync(path.join(root, name), { bigint: true }).mtimeNs)
      expect(Number(a > b ? a - b : b - a), name || 'the directory').to.be.at.most(1000)
    }
  })

  it('without preserve, gives each file its own mode less the umask, one block or several, writable by its owner or not', async function () {
    const src = path.join(work, 'm')
    const modes = [0o640, 0o444, 0o755, 0o600, 0o466]
    for (const mode of modes) {
      for (const size of [10, 3 * BLOCK + 1]) {
        const file = path.join(src, `${mode.toString(8)}-${size}`)
        writeRandom(file, size)
        fs.chmodSync(file, mode)
      }
    }
    const dst = path.join(work, 'n')
    const summary = await copy({ sources: [src], destination: dst, options: opts({ recursive: true }) })
    expect(summary.ok).to.equal(true)
    const umask = process.umask()
    for (const name of fs.readdirSync(src)) {
      const mode = Number.parseInt(name.split('-')[0], 8)
      expect((fs.statSync(path.join(dst, name)).mode & 0o7777).toString(8), name).to.equal((mode & ~umask & 0o777).toString(8))
    }
    expect(leftoverTemps(dst)).to.deep.equal([])
  })

  it('without preserve, keeps the permissions of a file it writes over and the mode of a directory that was there; with preserve, gives them the source\'s', async function () {
    const src = path.join(work, 'src')
    writeRandom(path.join(src, 'small'), 10)
    writeRandom(path.join(src, 'large'), 3 * BLOCK + 1)
    fs.chmodSync(path.join(src, 'small'), 0o644)
    fs.chmodSync(path.join(src, 'large'), 0o644)
    const root = process.getuid?.() === 0
    for (const engine of [{}, { plugins: ['@escp/engine-posix'], engine: 'posix' }]) {
      const dst = path.join(work, `dst-${Object.keys(engine).length}`)
      // What is there before: a private directory and two private files, one not owned by us.
      fs.mkdirSync(path.join(dst, 'src'), { recursive: true, mode: 0o700 })
      fs.chmodSync(path.join(dst, 'src'), 0o700)
      for (const name of ['small', 'large']) {
        fs.writeFileSync(path.join(dst, 'src', name), 'old')
        fs.chmodSync(path.join(dst, 'src', name), name === 'small' ? 0o600 : 0o660)
        if (root) fs.chownSync(path.join(dst, 'src', name), 65534, 65534)
      }
      const summary = await copy({ sources: [src], destination: dst, options: opts({ recursive: true, ...engine }) })
      expect(summary.ok, JSON.stringify(summary.failures)).to.equal(true)
      const stat = (name: string) => fs.statSync(path.join(dst, 'src', name))
      expect((stat('').mode & 0o777).toString(8), 'the directory').to.equal('700')
      expect((stat('small').mode & 0o777).toString(8), 'small').to.equal('600')
      expect((stat('large').mode & 0o777).toString(8), 'large').to.equal('660')
      // The copy is the writer's, as rsync's is.
      if (root) for (const name of ['small', 'large']) expect([stat(name).uid, stat(name).gid], name).to.deep.equal([0, 0])
      expect(describeTree(path.join(dst, 'src'))).to.deep.equal(describeTree(src))
      // With preserve, the source's.
      const preserved = await copy({ sources: [src], destination: dst, options: opts({ recursive: true, preserve: true, ...engine }) })
      expect(preserved.ok, JSON.stringify(preserved.failures)).to.equal(true)
      for (const name of ['', 'small', 'large']) expect((stat(name).mode & 0o777).toString(8), `preserved ${name}`).to.equal((fs.statSync(path.join(src, name)).mode & 0o777).toString(8))
      expect(leftoverTemps(dst)).to.deep.equal([])
    }
  })

  it('follows scp for destinations: into a directory, to a new name, refused for many into a non-directory', async function () {
    const a = path.join(work, 'a.txt')
    const b = path.join(work, 'b.txt')
    fs.writeFileSync(a, 'A')
    fs.writeFileSync(b, 'B')
    const dir = path.join(work, 'dir')
    fs.mkdirSync(dir)
    expect((await copy({ sources: [a, b], destination: dir + '/', options: opts() })).ok).to.equal(true)
    expect(fs.readFileSync(path.join(dir, 'b.txt'), 'utf8')).to.equal('B')
    expect((await copy({ sources: [a], destination: path.join(work, 'renamed'), options: opts() })).ok).to.equal(true)
    expect(fs.readFileSync(path.join(work, 'renamed'), 'utf8')).to.equal('A')
    // Overwrites an existing file, as scp does.
    expect((await copy({ sources: [b], destination: path.join(work, 'renamed'), options: opts() })).ok).to.equal(true)
    expect(fs.readFileSync(path.join(work, 'renamed'), 'utf8')).to.equal('B')
    const err = await copy({ sources: [a, b], destination: path.join(work, 'nodir'), options: opts() }).catch((e) => e)
    expect(err.code).to.equal('ESCP_ERR_DEST_NOT_DIR')
    expect(fs.existsSync(path.join(work, 'nodir'))).to.equal(false)
    // -r dir to a new name creates it; to an existing directory goes inside.
    const tree = path.join(work, 'tree')
    writeRandom(path.join(tree, 'x'), 10)
    expect((await copy({ sources: [tree + '/'], destination: path.join(work, 'fresh'), options: opts({ recursive: true }) })).ok).to.equal(true)
    expect(fs.existsSync(path.join(work, 'fresh', 'x'))).to.equal(true)
    expect((await copy({ sources: [tree], destination: path.join(work, 'fresh'), options: opts({ recursive: true }) })).ok).to.equal(true)
    expect(fs.existsSync(path.join(work, 'fresh', 'tree', 'x'))).to.equal(true)
  })

  it('copies a directory to a new name given with a trailing slash, as cp and scp do, and refuses a file there', async function () {
    const tree = path.join(work, 'tree')
    writeRandom(path.join(tree, 'sub', 'x'), 10)
    const summary = await copy({ sources: [tree], destination: `${path.join(work, 'new')}/`, options: opts({ recursive: true }) })
    expect(summary.ok, JSON.stringify(summary.failures)).to.equal(true)
    expect(describeTree(path.join(work, 'new'))).to.deep.equal(describeTree(tree))
    const file = await copy({ sources: [path.join(tree, 'sub', 'x')], destination: `${path.join(work, 'newfile')}/`, options: opts() })
    expect(file.failures.map((f) => f.error.code)).to.deep.equal(['ESCP_ERR_DEST_NOT_DIR'])
    expect(fs.existsSync(path.join(work, 'newfile'))).to.equal(false)
    // A name with a slash that is a file.
    fs.writeFileSync(path.join(work, 'plain'), 'p')
    const onFile = await copy({ sources: [path.join(tree, 'sub', 'x')], destination: `${path.join(work, 'plain')}/`, options: opts() }).catch((e: { code?: string }) => e.code)
    expect(onFile).to.equal('ESCP_ERR_DEST_NOT_DIR')
    expect(leftoverTemps(work)).to.deep.equal([])
  })

  it('copies `.`, `..` and `dir/.` under the name of the directory they are; refuses `/`, which has none', async function () {
    const tree = path.join(work, 'tree')
    writeRandom(path.join(tree, 'sub', 'x'), 10)
    for (const [source, name] of [[`${tree}/.`, 'dot'], [`${tree}/sub/..`, 'dotdot']] as const) {
      const summary = await copy({ sources: [source], destination: path.join(work, name), options: opts({ recursive: true }) })
      expect(summary.ok, JSON.stringify(summary.failures)).to.equal(true)
      expect(describeTree(path.join(work, name)), source).to.deep.equal(describeTree(tree))
    }
    fs.mkdirSync(path.join(work, 'into'))
    expect((await copy({ sources: [`${tree}/.`], destination: path.join(work, 'into'), options: opts({ recursive: true }) })).ok).to.equal(true)
    expect(describeTree(path.join(work, 'into', 'tree'))).to.deep.equal(describeTree(tree))
    const root = await copy({ sources: ['/'], destination: path.join(work, 'root'), options: opts({ recursive: true }) })
    expect(root.failures.map((f) => f.error.code)).to.deep.equal(['ESCP_ERR_SOURCE'])
    expect(fs.existsSync(path.join(work, 'root'))).to.equal(false)
  })

  it('refuses a directory without recursion and reports a missing source, copying the rest', async function () {
    const dir = path.join(work, 'd')
    writeRandom(path.join(dir, 'inside'), 10)
    const file = path.join(work, 'ok.bin')
    writeRandom(file, 2000)
    const dst = path.join(work, 'out')
    fs.mkdirSync(dst)
    const summary = await copy({ sources: [dir, path.join(work, 'missing'), file], destination: dst, options: opts() })
    expect(summary.ok).to.equal(false)
    expect(summary.failures.map((f) => f.error.code).sort()).to.deep.equal(['ESCP_ERR_IO', 'ESCP_ERR_SOURCE'])
    expect(summary.failures.find((f) => f.error.code === 'ESCP_ERR_IO')?.error.message).to.contain('missing')
    expect(sha256File(path.join(dst, 'ok.bin'))).to.equal(sha256File(file))
    expect(fs.existsSync(path.join(dst, 'd'))).to.equal(false)
  })

  it('skips special files in a tree with a warning and still succeeds; fails one named on its own', async function () {
    const src = path.join(work, 's')
    writeRandom(path.join(src, 'real'), 10)
    execFileSync('mkfifo', [path.join(src, 'pipe')])
    const dst = path.join(work, 't')
    const warnings: string[] = []
    const summary = await copy({ sources: [src], destination: dst, options: opts({ recursive: true }), onIssue: (i) => warnings.push(i.path) })
    expect(summary.ok).to.equal(true)
    expect(warnings).to.deep.equal([path.join(src, 'pipe')])
    expect(fs.existsSync(path.join(dst, 'pipe'))).to.equal(false)
    // Named on its own, as scp has it: an error, and the copy is not ok.
    const named = await copy({ sources: [path.join(src, 'pipe'), path.join(src, 'real')], destination: `${dst}/`, options: opts() })
    expect(named.ok).to.equal(false)
    expect(named.failures.map((f) => [f.path, f.error.code])).to.deep.equal([[path.join(src, 'pipe'), 'ESCP_ERR_SOURCE']])
    expect(fs.readFileSync(path.join(dst, 'real')).byteLength).to.equal(10)
  })

  it('fails cleanly with a clear error for an unknown cipher, engine or checksum', async function () {
    const file = path.join(work, 'f')
    writeRandom(file, 10)
    for (const [key, value] of [['cipher', 'rot13'], ['engine', 'tape'], ['checksum', 'crc99'], ['compressor', 'lzma']]) {
      const err = await copy({ sources: [file], destination: path.join(work, 'g'), options: opts({ [key]: value }) }).catch((e) => e)
      expect(err.code, key).to.equal('ESCP_ERR_UNKNOWN_PLUGIN')
      expect(err.message).to.contain(value)
    }
  })

  it('moves data with the dummy engine on both sides without creating files', async function () {
    const file = path.join(work, 'huge')
    fs.writeFileSync(file, '')
    fs.truncateSync(file, 200 * 1024 * KiB)
    const dst = path.join(work, 'sink')
    fs.mkdirSync(dst)
    const summary = await copy({ sources: [file], destination: dst, options: opts({ engine: 'dummy', blockSizeBytes: 1024 * KiB }) })
    expect(summary.ok).to.equal(true)
    expect(summary.bytes).to.equal(200 * 1024 * KiB)
    expect(fs.readdirSync(dst)).to.deep.equal([])
  })

  it('copies a 3 GiB sparse file with zstd and --sparse: content and holes', async function () {
    const file = path.join(work, 'sparse')
    const fd = fs.openSync(file, 'w')
    const marks = [0, 1024 ** 3, 2 * 1024 ** 3 + 12345, 3 * 1024 ** 3 - 4096]
    for (const at of marks) fs.writeSync(fd, Buffer.from(`data at ${at}`), 0, undefined, at)
    fs.ftruncateSync(fd, 3 * 1024 ** 3)
    fs.closeSync(fd)
    const dst = path.join(work, 'sparse-copy')
    const summary = await copy({ sources: [file], destination: dst, options: opts({ blockSizeBytes: 1024 * KiB, compressor: 'zstd', sparse: true }) })
    expect(summary.ok, JSON.stringify(summary.failures)).to.equal(true)
    expect(fs.statSync(dst).size).to.equal(3 * 1024 ** 3)
    expect(fs.statSync(dst).blocks * 512).to.be.lessThan(64 * 1024 * KiB)
    const rfd = fs.openSync(dst, 'r')
    for (const at of marks) {
      const b = Buffer.alloc(32)
      fs.readSync(rfd, b, 0, 32, at)
      expect(b.toString('latin1').startsWith(`data at ${at}`)).to.equal(true)
    }
    fs.closeSync(rfd)
    expect(sha256File(dst)).to.equal(sha256File(file))
  })

  it('copies 10,000 small files', async function () {
    const src = path.join(work, 'many')
    for (let d = 0; d < 100; d++) {
      fs.mkdirSync(path.join(src, `d${d}`), { recursive: true })
      for (let f = 0; f < 100; f++) fs.writeFileSync(path.join(src, `d${d}`, `f${f}`), Buffer.alloc(1 + ((d * 100 + f) % 4096), d))
    }
    const dst = path.join(work, 'many-copy')
    const summary = await copy({ sources: [src], destination: dst, options: opts({ recursive: true }) })
    expect(summary.ok, JSON.stringify(summary.failures.slice(0, 3))).to.equal(true)
    expect(summary.entries).to.equal(10_101)
    expect(describeTree(dst)).to.deep.equal(describeTree(src))
  })

  it('copies small compressible files with more of them in flight than the stream workers have buffers', async function () {
    // Queue depth 1: 4 buffers per worker (2 per block with a compressor), up to 16 small blocks
    // in flight, so blocks wait for buffers on both sides.
    const src = path.join(work, 'logs')
    fs.mkdirSync(src)
    for (let i = 0; i < 300; i++) fs.writeFileSync(path.join(src, `l${i}`), `line ${i} of a small log\n`.repeat(20 + (i % 200)))
    writeRandom(path.join(src, 'random'), 3 * BLOCK + 5)
    const dst = path.join(work, 'logs-copy')
    const summary = await copy({ sources: [src], destination: dst, options: opts({ recursive: true, compressor: 'zstd', queueDepth: 1 }) })
    expect(summary.ok, JSON.stringify(summary.failures.slice(0, 3))).to.equal(true)
    expect(summary.wireBytes).to.be.lessThan(summary.bytes)
    expect(describeTree(dst)).to.deep.equal(describeTree(src))
  })

  it('stops on its AbortSignal: rejects with ESCP_ERR_INTERRUPTED, the receiver removes its temporary file, and the directories made get their modes', async function () {
    const tree = path.join(work, 'tree')
    const src = path.join(tree, 'big.bin')
    writeRandom(src, 8 * 1024 * KiB)
    const out = path.join(work, 'out')
    fs.mkdirSync(out)
    const stop = new AbortController()
    const copying = copy({ sources: [tree], destination: `${out}/`, options: opts({ streams: 1, recursive: true, limitBytesPerSec: 2 * 1024 * KiB }), signal: stop.signal })
    for (let waited = 0; leftoverTemps(out).length === 0 && waited < 10_000; waited += 20) await new Promise((resolve) => setTimeout(resolve, 20))
    stop.abort()
    const err = await copying.then(() => new Error('the copy was not stopped'), (e: Error & { code?: string }) => e)
    expect((err as { code?: string }).code, err.message).to.equal('ESCP_ERR_INTERRUPTED')
    expect(err.message).to.equal('ESCP_ERR_INTERRUPTED: interrupted by its caller; files not finished were removed')
    expect(fs.readdirSync(out)).to.deep.equal(['tree'])
    expect(fs.readdirSync(path.join(out, 'tree'))).to.deep.equal([])
    // Made private (0700) while filled, then given its mode, stopped or not.
    expect((fs.statSync(path.join(out, 'tree')).mode & 0o777).toString(8)).to.equal((fs.statSync(tree).mode & ~process.umask() & 0o777).toString(8))
    fs.rmSync(path.join(out, 'tree'), { recursive: true })
    // Stopped before it starts: at once, and nothing is written.
    const early = await copy({ sources: [src], destination: `${out}/`, options: opts(), signal: AbortSignal.abort() }).catch((e: { code?: string }) => e.code)
    expect(early).to.equal('ESCP_ERR_INTERRUPTED')
    expect(fs.readdirSync(out)).to.deep.equal([])
  })

  it('fails a file that shrinks while a paced copy sends it with ESCP_ERR_SOURCE_CHANGED, by name, and ends the session cleanly', async function () {
    const src = path.join(work, 'shrinks.bin')
    writeRandom(src, 8 * 1024 * KiB)
    const out = path.join(work, 'out')
    fs.mkdirSync(out)
    // 2 MiB/s: the file takes some 4 s, and shrinks once its copy is under way.
    const copying = copy({ sources: [src], destination: `${out}/`, options: opts({ streams: 1, blockSizeBytes: 256 * KiB, limitBytesPerSec: 2 * 1024 * KiB }) })
    for (let waited = 0; leftoverTemps(out).length === 0 && waited < 10_000; waited += 20) await new Promise((resolve) => setTimeout(resolve, 20))
    fs.truncateSync(src, 1024 * KiB)
    const summary = await copying
    expect(summary.ok).to.equal(false)
    expect(summary.failures.map((f) => [f.path, f.error.code])).to.deep.equal([[src, 'ESCP_ERR_SOURCE_CHANGED']])
    expect(fs.readdirSync(out)).to.deep.equal([])
  })

  it('fails a file modified in place, or replaced, while it is read with ESCP_ERR_SOURCE_CHANGED; one removed still arrives', async function () {
    const out = path.join(work, 'out')
    fs.mkdirSync(out)
    const changes: Array<[string, (file: string) => void, string | null]> = [
      // The same size, new bytes in the middle.
      ['rewritten', (file) => fs.writeFileSync(file, Buffer.alloc(4096, 7), { flag: 'r+' }), 'ESCP_ERR_SOURCE_CHANGED'],
      // Saved anew, as editors do: another file renamed over the name.
      ['replaced', (file) => (writeRandom(`${file}.new`, 8 * 1024 * KiB), fs.renameSync(`${file}.new`, file)), 'ESCP_ERR_SOURCE_CHANGED'],
      ['removed', (file) => fs.unlinkSync(file), null],
    ]
    for (const [name, change, code] of changes) {
      const src = path.join(work, name)
      writeRandom(src, 8 * 1024 * KiB)
      const original = sha256File(src)
      // 4 MiB/s: the file takes some 2 s, and changes once its copy is under way.
      const copying = copy({ sources: [src], destination: `${out}/`, options: opts({ streams: 1, blockSizeBytes: 256 * KiB, limitBytesPerSec: 4 * 1024 * KiB }) })
      for (let waited = 0; leftoverTemps(out).length === 0 && waited < 10_000; waited += 20) await new Promise((resolve) => setTimeout(resolve, 20))
      change(src)
      const summary = await copying
      if (code === null) {
        expect(summary.ok, `${name}: ${JSON.stringify(summary.failures)}`).to.equal(true)
        expect(sha256File(path.join(out, name)), name).to.equal(original)
      } else {
        expect(summary.failures.map((f) => [f.path, f.error.code]), name).to.deep.equal([[src, code]])
        expect(fs.existsSync(path.join(out, name)), name).to.equal(false)
      }
    }
    expect(leftoverTemps(out)).to.deep.equal([])
  })

  it('writes nothing outside the destination when a directory there is swapped for a symlink during the copy', async function () {
    const tree = path.join(work, 'tree')
    writeRandom(path.join(tree, 'a-big'), 8 * 1024 * KiB)
    writeRandom(path.join(tree, 'sub', 'x'), 100)
    writeRandom(path.join(tree, 'sub', 'y'), 3 * BLOCK + 5)
    const dst = path.join(work, 'dst')
    const outside = path.join(work, 'outside')
    fs.mkdirSync(path.join(dst, 'tree', 'sub'), { recursive: true })
    fs.mkdirSync(outside)
    fs.chmodSync(outside, 0o777)
    // 4 MiB/s: the large file first, some 2 s; the directory's files come after it.
    const copying = copy({ sources: [tree], destination: dst, options: opts({ streams: 1, recursive: true, blockSizeBytes: 256 * KiB, limitBytesPerSec: 4 * 1024 * KiB }) })
    for (let waited = 0; leftoverTemps(path.join(dst, 'tree')).length === 0 && waited < 10_000; waited += 20) await new Promise((resolve) => setTimeout(resolve, 20))
    fs.renameSync(path.join(dst, 'tree', 'sub'), path.join(dst, 'tree', 'sub.moved'))
    fs.symlinkSync(outside, path.join(dst, 'tree', 'sub'))
    const summary = await copying
    expect(fs.readdirSync(outside), 'written outside the destination').to.deep.equal([])
    expect(fs.statSync(outside).mode & 0o777, "the outside directory's mode").to.equal(0o777)
    if (summary.ok) {
      // Placed before the swap: the files went where the directory went, inside the destination.
      expect(describeTree(path.join(dst, 'tree', 'sub.moved'))).to.deep.equal(describeTree(path.join(tree, 'sub')))
    } else {
      // Swapped before the directory was placed: the symlink there is refused, with what is in it.
      expect(summary.failures.map((f) => [path.relative(tree, f.path), f.error.code])).to.deep.equal([
        ['sub', 'ESCP_ERR_PATH_UNSAFE'],
        ['sub/x', 'ESCP_ERR_PATH_UNSAFE'],
        ['sub/y', 'ESCP_ERR_PATH_UNSAFE'],
      ])
    }
    expect(leftoverTemps(dst)).to.deep.equal([])
  })

  it('does not read through a symlink put at a listed name during the copy; a source named through a symlink is read', async function () {
    const secret = path.join(work, 'secret')
    fs.writeFileSync(secret, 'TOP SECRET')
    const tree = path.join(work, 'tree')
    const dst = path.join(work, 'dst')
    for (const engine of [{}, { plugins: ['@escp/engine-posix'], engine: 'posix' }]) {
      fs.rmSync(tree, { recursive: true, force: true })
      fs.rmSync(dst, { recursive: true, force: true })
      writeRandom(path.join(tree, 'a-big'), 8 * 1024 * KiB)
      fs.writeFileSync(path.join(tree, 'b'), 'plain')
      const copying = copy({ sources: [tree], destination: dst, options: opts({ streams: 1, recursive: true, blockSizeBytes: 256 * KiB, limitBytesPerSec: 4 * 1024 * KiB, ...engine }) })
      for (let waited = 0; leftoverTemps(dst).length === 0 && waited < 10_000; waited += 20) await new Promise((resolve) => setTimeout(resolve, 20))
      fs.rmSync(path.join(tree, 'b'))
      fs.symlinkSync(secret, path.join(tree, 'b'))
      const summary = await copying
      expect(summary.failures.map((f) => [f.path, f.error.errno]), JSON.stringify(engine)).to.deep.equal([[path.join(tree, 'b'), 'ELOOP']])
      expect(fs.existsSync(path.join(dst, 'b'))).to.equal(false)
      expect(fs.readFileSync(path.join(dst, 'a-big')).byteLength).to.equal(8 * 1024 * KiB)
    }
    // Named through a symlink, a file or a directory is read, as scp reads it.
    fs.symlinkSync(path.join(tree, 'a-big'), path.join(work, 'link-to-file'))
    fs.symlinkSync(tree, path.join(work, 'link-to-tree'))
    const named = await copy({ sources: [path.join(work, 'link-to-file'), path.join(work, 'link-to-tree')], destination: `${dst}/`, options: opts({ recursive: true }) })
    expect(named.ok, JSON.stringify(named.failures)).to.equal(true)
    expect(sha256File(path.join(dst, 'link-to-file'))).to.equal(sha256File(path.join(tree, 'a-big')))
    expect(fs.readlinkSync(path.join(dst, 'link-to-tree', 'b'))).to.equal(secret)
  })

  it('reads the files of a source directory swapped for a symlink during the copy from the directory it listed', async function () {
    const tree = path.join(work, 'tree')
    const outside = path.join(work, 'outside')
    fs.mkdirSync(outside)
    fs.writeFileSync(path.join(outside, 'x'), Buffer.alloc(100, 'O'))
    for (const [i, engine] of [{}, { plugins: ['@escp/engine-posix'], engine: 'posix' }].entries()) {
      const dst = path.join(work, `dst-${i}`)
      fs.rmSync(tree, { recursive: true, force: true })
      writeRandom(path.join(tree, 'a-big'), 8 * 1024 * KiB)
      writeRandom(path.join(tree, 'sub', 'x'), 100)
      writeRandom(path.join(tree, 'sub', 'y'), 3 * BLOCK + 5)
      fs.writeFileSync(path.join(outside, 'y'), fs.readFileSync(path.join(tree, 'sub', 'y')).fill(0x55))
      const listed = describeTree(path.join(tree, 'sub'))
      // 4 MiB/s: the large file first, some 2 s; the directory's files are read after it.
      const copying = copy({ sources: [tree], destination: dst, options: opts({ streams: 1, recursive: true, blockSizeBytes: 256 * KiB, limitBytesPerSec: 4 * 1024 * KiB, ...engine }) })
      for (let waited = 0; leftoverTemps(dst).length === 0 && waited < 10_000; waited += 20) await new Promise((resolve) => setTimeout(resolve, 20))
      fs.renameSync(path.join(tree, 'sub'), path.join(tree, 'sub.moved'))
      fs.symlinkSync(outside, path.join(tree, 'sub'))
      const summary = await copying
      expect(summary.ok, `${JSON.stringify(engine)}: ${JSON.stringify(summary.failures)}`).to.equal(true)
      expect(describeTree(path.join(dst, 'sub')), JSON.stringify(engine)).to.deep.equal(listed)
      expect(leftoverTemps(dst)).to.deep.equal([])
    }
  })

  it('reports a full disk by file name, leaves no complete-looking file, and copies the files that fit', async function () {
    const mnt = path.join(work, 'small')
    fs.mkdirSync(mnt)
    const mount = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', mnt])
    if (mount.status !== 0) {
      skipBecause(this, `cannot mount a small tmpfs here (${mount.stderr.toString().trim()})`)
    }
    try {
      const src = path.join(work, 'fill')
      writeRandom(path.join(src, 'small.bin'), 1000)
      writeRandom(path.join(src, 'too-big.bin'), 4 * 1024 * KiB)
      // node-fs writes until the disk is full; posix preallocates, and fallocate fails first.
      for (const engine of [{}, { plugins: ['@escp/engine-posix'], engine: 'posix' }]) {
        const summary = await copy({ sources: [src], destination: mnt, options: opts({ recursive: true, ...engine }) })
        expect(summary.failures.map((f) => [f.path, f.error.errno]), JSON.stringify(engine)).to.deep.equal([[path.join(src, 'too-big.bin'), 'ENOSPC']])
        expect(fs.existsSync(path.join(mnt, 'fill', 'too-big.bin'))).to.equal(false)
        expect(fs.readFileSync(path.join(mnt, 'fill', 'small.bin')).byteLength).to.equal(1000)
        expect(fs.statSync(path.join(mnt, 'fill')).mode & 0o777, 'the directory its mode').to.equal(fs.statSync(src).mode & 0o777)
        expect(leftoverTemps(mnt)).to.deep.equal([])
        fs.rmSync(path.join(mnt, 'fill'), { recursive: true })
      }
    } finally {
      spawnSync('umount', [mnt])
    }
  })
})
