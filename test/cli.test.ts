// The escp command as a user runs it: loopback copies, and push and pull through a private
// sshd on 127.0.0.1 that starts `escp server` on the "remote" side.
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { expect } from 'chai'
import { protocol } from '@escp/core'
import { skipBecause, skipIfUnavailable } from '@escp/core/testing'
import { UringEngine } from '@escp/engine-uring'
import { describeTree, sha256File, tempDir, writeRandom } from './helpers/trees'
import { startSshd } from './helpers/sshd'
import type { PrivateSshd } from './helpers/sshd'

const ESCP = path.resolve(__dirname, '..', 'packages', 'cli', 'bin', 'run.js')
let nextPort = 30000 + (process.pid % 1000) * 10

interface Run {
  code: number | null
  stdout: string
  stderr: string
  ms: number
}

function escp(args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; uid?: number; gid?: number } = {}): Promise<Run> {
  nextPort += 10
  const started = Date.now()
  return new Promise((resolve) => {
    const portArgs = ['engines', '-V', 'plugins', 'autocomplete', 'server'].includes(args[0]) ? [] : ['--escp-port', String(nextPort)]
    const child = spawn(process.execPath, [ESCP, ...portArgs, ...args], { cwd: options.cwd, env: { ...process.env, ESCP_CONFIG: '/nonexistent', ...options.env }, uid: options.uid, gid: options.gid, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    child.on('close', (code) => resolve({ code, stdout, stderr, ms: Date.now() - started }))
  })
}

/** Pids of the processes whose environment holds `mark`. */
function processesMarked(mark: string): number[] {
  const pids: number[] = []
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue
    try {
      if (fs.readFileSync(`/proc/${d}/environ`, 'latin1').includes(mark)) pids.push(Number(d))
    } catch {
      // It exited while we looked, or is not ours to read.
    }
  }
  return pids
}

/** Temporary files (`.escp-*.tmp`) anywhere under `dir`. */
function temporaryFiles(dir: string): string[] {
  if (!fs.existsSync(dir)) return []
  return (fs.readdirSync(dir, { recursive: true }) as string[]).filter((name) => /(^|\/)\.escp-[0-9a-f]+\.tmp$/.test(name))
}

/** Waits up to 10 s for `ready`. */
async function until(ready: () => boolean, what: string): Promise<void> {
  for (let waited = 0; !ready(); waited += 50) {
    if (waited > 10_000) throw new Error(`${what} did not happen within 10 s`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

/**
 * Runs the command in a process group of its own, as a shell runs a job, and sends `signal`
 * once `ready` says the copy is under way: to the whole group, as Ctrl-C does, or to the
 * processes `target` picks. Returns how it ended, and the processes left holding its mark.
 */
async function escpStopped(args: string[], options: { cwd: string; signal: NodeJS.Signals; ready: () => boolean; target?: (marked: number[], command: number) => number[] }): Promise<Run & { left: number[]; stopMs: number }> {
  nextPort += 10
  const mark = `escp-test-${process.pid}-${Date.now()}`
  const started = Date.now()
  const child = spawn(process.execPath, [ESCP, '--escp-port', String(nextPort), ...args], { cwd: options.cwd, detached: true, env: { ...process.env, ESCP_CONFIG: '/nonexistent', ESCP_TEST_MARK: mark }, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d) => (stdout += d))
  child.stderr.on('data', (d) => (stderr += d))
  const closed = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)))
  await until(options.ready, 'the copy')
  const pid = child.pid as number
  const signalled = Date.now()
  if (options.target) for (const p of options.target(processesMarked(mark), pid)) process.kill(p, options.signal)
  else process.kill(-pid, options.signal)
  const code = await closed
  const stopMs = Date.now() - signalled
  let left = processesMarked(mark)
  for (let waited = 0; left.length > 0 && waited < 5000; waited += 100) {
    await new Promise((resolve) => setTimeout(resolve, 100))
    left = processesMarked(mark)
  }
  return { code, stdout, stderr, ms: Date.now() - started, left, stopMs }
}

describe('escp command', function () {
  this.timeout(120_000)
  let work: string

  beforeEach(function () {
    work = tempDir('cli')
  })
  afterEach(function () {
    fs.rmSync(work, { recursive: true, force: true })
  })

  describe('locally (loopback mode)', function () {
    it('copies a tree with -rp and prints a summary', async function () {
      writeRandom(path.join(work, 'src', 'a', 'b.bin'), 300_000)
      fs.writeFileSync(path.join(work, 'src', 'note.txt'), 'hello')
      const r = await escp(['-rp', 'src', 'dst'], { cwd: work })
      expect(r.code, r.stderr).to.equal(0)
      expect(r.stderr).to.match(/4\/4 entries/)
      expect(describeTree(path.join(work, 'dst'), true)).to.deep.equal(describeTree(path.join(work, 'src'), true))
    })

    it('leaves no receiver process behind when it stops before copying, or at a refused option', async function () {
      fs.writeFileSync(path.join(work, 'a.txt'), 'a')
      for (const args of [['--blocksize', '1', 'a.txt', 'b.txt'], ['--cipher', 'nope', 'a.txt', 'b.txt']]) {
        // The receiver child, started as the command starts, inherits this mark.
        const mark = `escp-test-${process.pid}-${Date.now()}`
        const r = await escp(args, { cwd: work, env: { ESCP_TEST_MARK: mark } })
        expect(r.code, args.join(' ')).to.not.equal(0)
        let left = processesMarked(mark)
        for (let waited = 0; left.length > 0 && waited < 5000; waited += 100) {
          await new Promise((resolve) => setTimeout(resolve, 100))
          left = processesMarked(mark)
        }
        expect(left, `${args.join(' ')}: processes still running`).to.deep.equal([])
        expect(fs.existsSync(path.join(work, 'b.txt'))).to.equal(false)
      }
    })

    it('stops on Ctrl-C or SIGTERM to its process group with status 130, and leaves no temporary file and no process', async function () {
      writeRandom(path.join(work, 'big'), 24 * 1024 * 1024)
      for (const signal of ['SIGINT', 'SIGTERM'] as const) {
        const out = path.join(work, `out-${signal}`)
        fs.mkdirSync(out)
        const r = await escpStopped(['-q', '-l', '4M', 'big', `${out}/`], { cwd: work, signal, ready: () => temporaryFiles(out).length > 0 })
        expect(r.code, r.stderr).to.equal(130)
        expect(r.stderr.trim()).to.equal(`escp: ESCP_ERR_INTERRUPTED: interrupted by ${signal}; files not finished were removed`)
        expect(fs.readdirSync(out), signal).to.deep.equal([])
        expect(r.left, `${signal}: processes still running`).to.deep.equal([])
      }
      // At a slow pace a record waits long for its turn: stopped, the command does not wait for it.
      const slow = path.join(work, 'out-slow')
      fs.mkdirSync(slow)
      const r = await escpStopped(['-q', '-l', '20K', 'big', `${slow}/`], { cwd: work, signal: 'SIGINT', ready: () => temporaryFiles(slow).length > 0 })
      expect(r.code, r.stderr).to.equal(130)
      expect(r.stopMs, 'time from the signal to the exit').to.be.below(5000)
      expect(fs.readdirSync(slow)).to.deep.equal([])
    })

    it('fails the copy when its receiver alone gets SIGTERM, which first removes its temporary file', async function () {
      writeRandom(path.join(work, 'big'), 24 * 1024 * 1024)
      fs.mkdirSync(path.join(work, 'out'))
      const receiver = (marked: number[], command: number) => marked.filter((p) => p !== command)
      const r = await escpStopped(['-q', '-l', '4M', 'big', 'out/'], { cwd: work, signal: 'SIGTERM', ready: () => temporaryFiles(path.join(work, 'out')).length > 0, target: receiver })
      expect(r.code, r.stderr).to.not.equal(0)
      expect(r.stderr).to.contain('ESCP_ERR_INTERRUPTED: interrupted by SIGTERM')
      expect(fs.readdirSync(path.join(work, 'out'))).to.deep.equal([])
      expect(r.left, 'processes still running').to.deep.equal([])
    })

    it('takes repeatable options (-o, --plugin-option) before the operands, as scp takes -o', async function () {
      fs.writeFileSync(path.join(work, 'a.txt'), 'a')
      const r = await escp(['-o', 'BatchMode=yes', '-o', 'Compression=no', '--plugin-option', 'uringQueueDepth=32', 'a.txt', 'b.txt'], { cwd: work })
      expect(r.code, r.stderr).to.equal(0)
      expect(fs.readFileSync(path.join(work, 'b.txt'), 'utf8')).to.equal('a')
    })

    it('copies with -C and a chosen cipher, checksum and stream count', async function () {
      fs.writeFileSync(path.join(work, 'log.txt'), 'GET /index.html 200\n'.repeat(100_000))
      const r = await escp(['-C', '-t', '2', '--cipher', 'chacha20-poly1305', '--checksum', 'blake3', 'log.txt', 'copy.txt'], { cwd: work })
      expect(r.code, r.stderr).to.equal(0)
      expect(r.stderr).to.contain('chacha20-poly1305').and.contain('blake3').and.contain('compressed')
      expect(sha256File(path.join(work, 'copy.txt'))).to.equal(sha256File(path.join(work, 'log.txt')))
    })

    it('reads sources from --filelist', async function () {
      for (const n of ['one', 'two', 'three']) fs.writeFileSync(path.join(work, n), n)
      fs.writeFileSync(path.join(work, 'list'), 'one\n# a comment\n\ntwo\nthree\n')
      fs.mkdirSync(path.join(work, 'out'))
      const r = await escp(['--filelist', 'list', 'out'], { cwd: work })
      expect(r.code, r.stderr).to.equal(0)
      expect(fs.readdirSync(path.join(work, 'out')).sort()).to.deep.equal(['one', 'three', 'two'])
    })

    it('copies each [SRC, DST] pair of a YAML --filelist', async function () {
      fs.writeFileSync(path.join(work, 'a'), 'A')
      writeRandom(path.join(work, 't', 'x'), 100)
      fs.writeFileSync(path.join(work, 'pairs.yaml'), '- [a, a.copy]\n- [t, t.copy]\n')
      const r = await escp(['-r', '--filelist', 'pairs.yaml'], { cwd: work })
      expect(r.code, r.stderr).to.equal(0)
      expect(fs.readFileSync(path.join(work, 'a.copy'), 'utf8')).to.equal('A')
      expect(describeTree(path.join(work, 't.copy'))).to.deep.equal(describeTree(path.join(work, 't')))
      fs.writeFileSync(path.join(work, 'bad.yaml'), '- [a, b]\n- [a]\n')
      const bad = await escp(['--filelist', 'bad.yaml'], { cwd: work })
      expect(bad.code).to.equal(2)
      expect(bad.stderr).to.contain('bad.yaml').and.contain('[SRC, DST] pairs')
    })

    it('explains bad flags and operands in one line with a non-zero exit', async function () {
      fs.writeFileSync(path.join(work, 'f'), 'x')
      const cases: Array<[string[], number, RegExp]> = [
        [['f'], 2, /give at least one source and a destination/],
        [['--cipher', 'rot13', 'f', 'g'], 2, /ESCP_ERR_UNKNOWN_PLUGIN: no cipher named 'rot13'; available ciphers: aes-128-gcm/],
        [['--blocksize', 'huge', 'f', 'g'], 2, /not a size/],
        [['--blocksize', '1k', 'f', 'g'], 2, /block size must be/],
        [['f', 'g', 'nodir/'], 2, /ESCP_ERR_DEST_NOT_DIR/],
        [['f', 'a:x', 'b:y'], 2, /not supported yet/],
        [['f', '-bad-host:x'], 2, /Nonexistent flag|cannot start with '-'/],
        // oclif's own errors, with escp's code.
        [['-t', '0', 'f', 'g'], 2, /^escp: ESCP_ERR_BAD_ARGUMENT: Parsing --parallel Expected an integer greater than or equal to 1 but received: 0$/],
        [['-t', 'abc', 'f', 'g'], 2, /^escp: ESCP_ERR_BAD_ARGUMENT: Parsing --parallel Expected an integer but received: abc$/],
        [['--escp-portrange', '5000', 'f', 'g'], 2, /^escp: ESCP_ERR_BAD_ARGUMENT: Parsing --escp-portrange Expected an integer less than or equal to 1000/],
        [['--no-such-flag', 'f', 'g'], 2, /^escp: ESCP_ERR_BAD_ARGUMENT: Nonexistent flag: --no-such-flag$/],
        [['-Z', 'f', 'g'], 2, /^escp: ESCP_ERR_BAD_ARGUMENT: Nonexistent flag: -Z$/],
        [['f', 'g', '--filelist'], 2, /^escp: ESCP_ERR_BAD_ARGUMENT: Flag --filelist expects a value$/],
        // Ours, as oclif rethrows them: once, from the code on.
        [['-l', 'abc', 'f', 'g'], 2, /^escp: ESCP_ERR_BAD_ARGUMENT: 'abc' is not a rate \(e\.g\. 500M, 2Gbit, 100Mbit\/s\)$/],
        [['--blocksize', '1x', 'f', 'g'], 2, /^escp: ESCP_ERR_BAD_ARGUMENT: '1x' is not a size/],
      ]
      for (const [args, code, message] of cases) {
        const r = await escp(args, { cwd: work })
        expect(r.code, `${args.join(' ')}: ${r.stderr}`).to.equal(code)
        expect(r.stderr, args.join(' ')).to.match(/^escp: ESCP_ERR_[A-Z_]+: [^\n]+\n$/)
        expect(r.stderr.trimEnd(), args.join(' ')).to.match(message)
      }
    })

    it('with -q prints no summary and no warning, and still every error, once', async function () {
      const src = path.join(work, 'src')
      fs.mkdirSync(path.join(src, 'locked'), { recursive: true })
      fs.writeFileSync(path.join(src, 'ok'), 'ok')
      fs.writeFileSync(path.join(src, 'locked', 'inside'), 'x')
      // A FIFO is skipped with a warning.
      execFileSync('mkfifo', [path.join(src, 'fifo')])
      // root reads any directory: the command runs as nobody then.
      const as = process.getuid?.() === 0 ? { uid: Number(execFileSync('id', ['-u', 'nobody'])), gid: Number(execFileSync('id', ['-g', 'nobody'])) } : {}
      fs.chmodSync(work, 0o777)
      for (const out of ['quiet', 'loud']) {
        fs.mkdirSync(path.join(work, out))
        fs.chmodSync(path.join(work, out), 0o777)
      }
      fs.chmodSync(path.join(src, 'locked'), 0)
      try {
        const quiet = await escp(['-q', '-r', 'src', 'missing', 'quiet'], { cwd: work, env: { HOME: work }, ...as })
        expect(quiet.code, quiet.stderr).to.equal(1)
        const errors = quiet.stderr.trimEnd().split('\n')
        expect(errors, quiet.stderr).to.have.length(2)
        expect(errors.find((l) => l.includes("stat 'missing'")), quiet.stderr).to.match(/^escp: ESCP_ERR_IO: stat 'missing': ENOENT/)
        expect(errors.find((l) => l.includes('src/locked')), quiet.stderr).to.match(/^escp: ESCP_ERR_IO: \w+ 'src\/locked': EACCES/)
        expect(fs.readFileSync(path.join(work, 'quiet', 'src', 'ok'), 'utf8')).to.equal('ok')
        // Without -q, the warning and the summary too.
        const loud = await escp(['-r', 'src', 'missing', 'loud'], { cwd: work, env: { HOME: work }, ...as })
        expect(loud.code, loud.stderr).to.equal(1)
        expect(loud.stderr).to.match(/warning: .*'src\/fifo'/).and.match(/entries/)
        for (const error of errors) expect(loud.stderr.split('\n'), error).to.include(error)
      } finally {
        fs.chmodSync(path.join(src, 'locked'), 0o755)
      }
    })

    it('exits 1 and names the file when one source is missing, copying the rest', async function () {
      fs.writeFileSync(path.join(work, 'here'), 'x')
      fs.mkdirSync(path.join(work, 'out'))
      const r = await escp(['here', 'missing', 'out'], { cwd: work })
      expect(r.code).to.equal(1)
      expect(r.stderr).to.contain("stat 'missing': ENOENT")
      expect(fs.readFileSync(path.join(work, 'out', 'here'), 'utf8')).to.equal('x')
    })

    it('copies 40 files of several blocks each at ulimit -n 64, taking its files a share of the descriptors at a time', async function () {
      const src = path.join(work, 'many')
      fs.mkdirSync(src)
      for (let i = 0; i < 40; i++) writeRandom(path.join(src, `f${i}`), 3 * 1024 * 1024 + i)
      const r = spawnSync('bash', ['-c', 'ulimit -n 64 && exec "$@"', 'bash', process.execPath, ESCP, '-q', '--escp-port', String((nextPort += 10)), '-r', 'many', 'out'], { cwd: work, env: { ...process.env, ESCP_CONFIG: '/nonexistent' }, encoding: 'utf8', timeout: 60_000 })
      expect(r.status, r.stderr).to.equal(0)
      expect(describeTree(path.join(work, 'out'))).to.deep.equal(describeTree(src))
    })

    it('reads no file through a source directory swapped for a symlink, past the directories it may hold (ulimit -n 256)', async function () {
      // At 256 descriptors the walk holds 64 directories: the 100th waits for the files of the
      // first to be read, and is swapped for a symlink meanwhile.
      const src = path.join(work, 'wide')
      const outside = path.join(work, 'outside')
      writeRandom(path.join(src, '0big'), 8 * 1024 * 1024)
      for (let i = 1; i <= 100; i++) {
        fs.mkdirSync(path.join(src, `d${String(i).padStart(3, '0')}`))
        fs.writeFileSync(path.join(src, `d${String(i).padStart(3, '0')}`, 'f'), `orig${String(i).padStart(3, '0')}\n`)
      }
      fs.mkdirSync(outside)
      fs.writeFileSync(path.join(outside, 'f'), 'OUTSIDE\n')
      const child = spawn('bash', ['-c', 'ulimit -n 256 && exec "$@"', 'bash', process.execPath, ESCP, '-q', '--escp-port', String((nextPort += 10)), '-t', '1', '-l', '4M', '-r', 'wide', 'out'], { cwd: work, env: { ...process.env, ESCP_CONFIG: '/nonexistent' }, stdio: ['ignore', 'ignore', 'pipe'] })
      let stderr = ''
      child.stderr.on('data', (d) => (stderr += d))
      const exited = new Promise<number | null>((resolve) => child.on('close', resolve))
      // Once the copy is under way, and a walk that did not wait would have listed every directory.
      for (let waited = 0; !fs.existsSync(path.join(work, 'out')) && waited < 10_000; waited += 20) await new Promise((resolve) => setTimeout(resolve, 20))
      await new Promise((resolve) => setTimeout(resolve, 500))
      fs.renameSync(path.join(src, 'd100'), path.join(src, 'd100.moved'))
      fs.symlinkSync(outside, path.join(src, 'd100'))
      const code = await exited
      const copied = path.join(work, 'out', 'd100', 'f')
      if (fs.existsSync(copied)) expect(fs.readFileSync(copied, 'utf8')).to.equal('orig100\n')
      if (code !== 0) expect(stderr).to.contain("ESCP_ERR_SOURCE_CHANGED: 'wide/d100' changed while it was sent")
      expect(fs.readFileSync(path.join(work, 'out', 'd099', 'f'), 'utf8')).to.equal('orig099\n')
    })

    it('reads defaults from a config file and reports a bad one by file and line', async function () {
      const conf = path.join(work, 'config.yaml')
      fs.writeFileSync(conf, 'parallel: 2\ncipher: aes-256-gcm\n')
      fs.writeFileSync(path.join(work, 'f'), 'x')
      const ok = await escp(['f', 'g'], { cwd: work, env: { ESCP_CONFIG: conf } })
      expect(ok.code, ok.stderr).to.equal(0)
      expect(ok.stderr).to.contain('2 streams, aes-256-gcm')
      // The command line wins, whether the entry point or oclif (a plugin may be installed through it) reads it.
      const mine = await escp(['-t', '3', 'f', 'h'], { cwd: work, env: { ESCP_CONFIG: conf } })
      expect(mine.code, mine.stderr).to.equal(0)
      expect(mine.stderr).to.contain('3 streams, aes-256-gcm')
      const share = path.join(work, 'share')
      fs.mkdirSync(path.join(share, 'escp'), { recursive: true })
      fs.writeFileSync(path.join(share, 'escp', 'package.json'), '{"private": true, "oclif": {"plugins": []}, "dependencies": {}}')
      const oclifs = await escp(['--cipher', 'chacha20-poly1305', 'f', 'i'], { cwd: work, env: { ESCP_CONFIG: conf, XDG_DATA_HOME: share } })
      expect(oclifs.code, oclifs.stderr).to.equal(0)
      expect(oclifs.stderr).to.contain('2 streams, chacha20-poly1305')
      fs.writeFileSync(conf, 'parallel: 2\nfavourite-colour: blue\n')
      const bad = await escp(['f', 'g'], { cwd: work, env: { ESCP_CONFIG: conf } })
      expect(bad.code).to.equal(2)
      expect(bad.stderr).to.contain(`${conf}:2: 'favourite-colour' is not an escp flag`)
      fs.writeFileSync(conf, 'parallel: [2\n')
      const broken = await escp(['f', 'g'], { cwd: work, env: { ESCP_CONFIG: conf } })
      expect(broken.code).to.equal(2)
      expect(broken.stderr).to.contain(`${conf}:`)
    })

    it('refuses a config value the flag would refuse, by file and line, before copying', async function () {
      const conf = path.join(work, 'config.yaml')
      fs.writeFileSync(path.join(work, 'f'), 'x')
      const cases: Array<[string, string]> = [
        ['parallel: 0', "'parallel' must be an integer from 1 to 128, not '0'"],
        ['blocksize: 1x', "'blocksize': '1x' is not a size"],
        ['recursive: yes', "'recursive' takes true or false, not 'yes'"],
      ]
      for (const [line, message] of cases) {
        fs.writeFileSync(conf, `bits: true\n${line}\n`)
        const r = await escp(['f', 'g'], { cwd: work, env: { ESCP_CONFIG: conf } })
        expect(r.code, `${line}: ${r.stderr}`).to.equal(2)
        expect(r.stderr, line).to.match(/^escp: ESCP_ERR_CONFIG: [^\n]+\n$/).and.contain(`${conf}:2: ${message}`)
        expect(fs.existsSync(path.join(work, 'g')), line).to.equal(false)
      }
    })

    it('paces each stream with -l, within 20% of the limit', async function () {
      writeRandom(path.join(work, 'paced'), 24 * 1024 * 1024)
      // 2 streams at 4 MiB/s each: 24 MiB take about 3 s.
      const r = await escp(['-t', '2', '-l', '4M', 'paced', 'paced.copy'], { cwd: work })
      expect(r.code, r.stderr).to.equal(0)
      const seconds = Number(/in ([\d.]+) s/.exec(r.stderr)?.[1])
      const rate = 24 / seconds
      expect(rate, `${rate.toFixed(2)} MiB/s`).to.be.within(8 * 0.8, 8 * 1.2)
      expect(sha256File(path.join(work, 'paced.copy'))).to.equal(sha256File(path.join(work, 'paced')))
    })

    it('lists engines, ciphers, compressors and checksums with availability', async function () {
      const r = await escp(['engines'])
      expect(r.code, r.stderr).to.equal(0)
      for (const name of ['node-fs', 'dummy', 'aes-128-gcm', 'zstd', 'xxh64', 'blake3']) expect(r.stdout).to.match(new RegExp(`${name}\\s+@escp/core\\s+available`))
    })

    it('copies through io_uring on both sides (--ioengine uring), or on one side (uring::posix, posix::uring)', async function () {
      skipIfUnavailable(this, "engine 'uring'", new UringEngine().available())
      writeRandom(path.join(work, 'big'), 5 * 1024 * 1024 + 123)
      for (const engine of ['uring', 'uring::posix', 'posix::uring']) {
        const copy = `big.${engine.replace('::', '-')}`
        const r = await escp(['--ioengine', engine, 'big', copy], { cwd: work })
        expect(r.code, `${engine}: ${r.stderr}`).to.equal(0)
        expect(sha256File(path.join(work, copy)), engine).to.equal(sha256File(path.join(work, 'big')))
      }
    })

    it('fails a copy asked to use uring where io_uring cannot run, naming the reason; auto still copies', async function () {
      fs.writeFileSync(path.join(work, 'f'), 'x')
      const env = { ESCP_URING_DISABLE: '1' }
      const r = await escp(['--ioengine', 'uring', 'f', 'g'], { cwd: work, env })
      expect(r.code).to.equal(2)
      expect(r.stderr).to.contain("ESCP_ERR_PLUGIN_UNAVAILABLE: the engine 'uring' cannot be used on this machine: io_uring is turned off by ESCP_URING_DISABLE=1")
      expect(fs.existsSync(path.join(work, 'g'))).to.equal(false)
      const auto = await escp(['f', 'h'], { cwd: work, env })
      expect(auto.code, auto.stderr).to.equal(0)
      expect(fs.readFileSync(path.join(work, 'h'), 'utf8')).to.equal('x')
    })

    it('links a third-party plugin that then shows in escp engines and works by name', async function () {
      const xdg = path.join(work, 'xdg')
      const env = { XDG_DATA_HOME: xdg, XDG_CONFIG_HOME: xdg, XDG_CACHE_HOME: xdg }
      const fixture = path.resolve(__dirname, 'fixtures', 'escp-plugin-sha3')
      const link = await escp(['plugins', 'link', '--no-install', fixture], { env })
      expect(link.code, link.stderr).to.equal(0)
      expect((await escp(['plugins'], { env })).stdout).to.contain('escp-plugin-sha3')
      expect((await escp(['engines'], { env })).stdout).to.match(/sha3-256\s+escp-plugin-sha3\s+available/)
      fs.writeFileSync(path.join(work, 'f'), 'plugin data')
      const r = await escp(['--checksum', 'sha3-256', 'f', 'g'], { cwd: work, env })
      expect(r.code, r.stderr).to.equal(0)
      expect(r.stderr).to.contain('checksum sha3-256')
      const without = await escp(['--checksum', 'sha3-256', 'f', 'h'], { cwd: work })
      expect(without.code).to.equal(2)
      expect(without.stderr).to.contain("no checksum named 'sha3-256'")
      // Plugin options reach the plugin on both ends (the receiver child too): digests cut to 16
      // bytes on one end only would verify no file.
      const cut = await escp(['--checksum', 'sha3-256', '--plugin-option', 'sha3-256.digestBytes=16', 'f', 'i'], { cwd: work, env })
      expect(cut.code, cut.stderr).to.equal(0)
      expect(fs.readFileSync(path.join(work, 'i'), 'utf8')).to.equal('plugin data')
      const refused = await escp(['--checksum', 'sha3-256', '--plugin-option', 'sha3-256.digestBytes=99', 'f', 'j'], { cwd: work, env })
      expect(refused.code).to.equal(2)
      expect(refused.stderr).to.contain('ESCP_ERR_BAD_ARGUMENT: the plugin option sha3-256.digestBytes must be 1 to 32, not 99')
      const malformed = await escp(['--plugin-option', 'digestBytes', 'f', 'k'], { cwd: work, env })
      expect(malformed.code).to.equal(2)
      expect(malformed.stderr).to.contain("plugin option 'digestBytes': write NAME=VALUE")
    })

    it('runs the control channel over a Unix socket with --mgmt', async function () {
      const sock = path.join(work, 'mgmt.sock')
      const server = spawn(process.execPath, [ESCP, 'server', '--mgmt', sock], { stdio: 'ignore' })
      const exited = new Promise((r) => server.once('exit', r))
      for (let i = 0; i < 100 && !fs.existsSync(sock); i++) await new Promise((r) => setTimeout(r, 50))
      expect((fs.statSync(sock).mode & 0o777).toString(8)).to.equal('600')
      writeRandom(path.join(work, 'm.bin'), 200_000)
      const r = await escp(['--mgmt', sock, 'm.bin', `127.0.0.1:${path.join(work, 'm.copy')}`], { cwd: work })
      expect(r.code, r.stderr).to.equal(0)
      expect(sha256File(path.join(work, 'm.copy'))).to.equal(sha256File(path.join(work, 'm.bin')))
      await exited
      expect(fs.existsSync(sock)).to.equal(false)
    })

    it('generates bash and zsh completion that knows the copy flags', async function () {
      const env = { XDG_CACHE_HOME: path.join(work, 'cache'), HOME: work }
      for (const shell of ['bash', 'zsh']) {
        const r = await escp(['autocomplete', shell], { env })
        expect(r.code, r.stderr).to.equal(0)
        const dir = path.join(work, 'cache', 'escp', 'autocomplete')
        const text = fs.readdirSync(dir, { recursive: true }).map((f) => String(f)).filter((f) => fs.statSync(path.join(dir, f)).isFile()).map((f) => fs.readFileSync(path.join(dir, f), 'utf8')).join('\n')
        expect(text, shell).to.contain('--parallel').and.contain('--cipher').and.contain('engines')
      }
    })

    it('writes the receiver\'s log to FILE.server beside the client\'s FILE, naming a failed file', async function () {
      fs.mkdirSync(path.join(work, 'src'))
      fs.writeFileSync(path.join(work, 'src', 'ok'), 'fine')
      fs.mkdirSync(path.join(work, 'dst', 'src', 'blocked'), { recursive: true })
      // A directory where a file must go: that one file fails at the receiver.
      fs.writeFileSync(path.join(work, 'src', 'blocked'), 'x')
      const r = await escp(['-r', '--logfile', 'run.log', 'src', 'dst'], { cwd: work })
      expect(r.code).to.equal(1)
      const server = fs.readFileSync(path.join(work, 'run.log.server'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)
      expect(server.map((l) => l.msg)).to.include.members(['session started', 'file failed', 'session done'])
      expect(server.find((l) => l.msg === 'file failed')?.path).to.match(/blocked/)
    })

    it('refuses a --logfile it cannot write before copying, and makes no directory for it', async function () {
      fs.writeFileSync(path.join(work, 'f'), 'x')
      const cases: Array<[string, string]> = [
        [work, 'EISDIR: illegal operation on a directory'],
        [path.join(work, 'no', 'such', 'dir', 'copy.log'), 'ENOENT: no such file or directory'],
      ]
      for (const [logfile, why] of cases) {
        const r = await escp(['--logfile', logfile, 'f', 'g'], { cwd: work })
        expect(r.code, r.stderr).to.equal(2)
        expect(r.stderr).to.equal(`escp: ESCP_ERR_BAD_ARGUMENT: cannot write the log '${logfile}': ${why}\n`)
        expect(fs.existsSync(path.join(work, 'g')), logfile).to.equal(false)
      }
      expect(fs.existsSync(path.join(work, 'no'))).to.equal(false)
    })

    it('prints its version quickly', async function () {
      const r = await escp(['-V'])
      expect(r.code).to.equal(0)
      expect(r.stdout).to.match(/escp\/cli\/0\.1\.0/)
    })
  })

  describe('through ssh', function () {
    let sshd: PrivateSshd
    let ssh: string[]

    before(async function () {
      const s = await startSshd()
      if (typeof s === 'string') {
        skipBecause(this, `${s}`)
      }
      sshd = s as PrivateSshd
      ssh = ['-F', sshd.configFile, '-D', ESCP]
    })
    after(async function () {
      await sshd?.stop()
    })

    it('pushes a tree and pulls it back, verified', async function () {
      writeRandom(path.join(work, 'tree', 'big.bin'), 3 * 1024 * 1024 + 11)
      writeRandom(path.join(work, 'tree', 'sub', 'small.bin'), 100)
      fs.mkdirSync(path.join(work, 'remote'))
      const up = await escp([...ssh, '-r', 'tree', `127.0.0.1:${path.join(work, 'remote')}`], { cwd: work })
      expect(up.code, up.stderr).to.equal(0)
      expect(describeTree(path.join(work, 'remote', 'tree'))).to.deep.equal(describeTree(path.join(work, 'tree')))
      const down = await escp([...ssh, '-r', `127.0.0.1:${path.join(work, 'remote', 'tree')}`, path.join(work, 'back')], { cwd: work })
      expect(down.code, down.stderr).to.equal(0)
      expect(describeTree(path.join(work, 'back'))).to.deep.equal(describeTree(path.join(work, 'tree')))
    })

    it('stops a push or a pull on Ctrl-C with status 130; the receiving side, remote or local, removes its temporary file', async function () {
      writeRandom(path.join(work, 'big'), 24 * 1024 * 1024)
      const remote = path.join(work, 'remote')
      fs.mkdirSync(remote)
      const up = await escpStopped([...ssh, '-q', '-l', '4M', 'big', `127.0.0.1:${remote}/`], { cwd: work, signal: 'SIGINT', ready: () => temporaryFiles(remote).length > 0 })
      expect(up.code, up.stderr).to.equal(130)
      // The remote server stops once its session's streams and control channel close.
      await until(() => temporaryFiles(remote).length === 0, 'the remote temporary file removed')
      const back = path.join(work, 'back')
      fs.mkdirSync(back)
      fs.copyFileSync(path.join(work, 'big'), path.join(remote, 'big'))
      const down = await escpStopped([...ssh, '-q', '-l', '4M', `127.0.0.1:${path.join(remote, 'big')}`, `${back}/`], { cwd: work, signal: 'SIGINT', ready: () => temporaryFiles(back).length > 0 })
      expect(down.code, down.stderr).to.equal(130)
      expect(down.stderr).to.contain('ESCP_ERR_INTERRUPTED: interrupted by SIGINT')
      expect(fs.readdirSync(back)).to.deep.equal([])
    })

    it('pushes and pulls single files with -p and -C, and with scp:// URIs', async function () {
      fs.writeFileSync(path.join(work, 'a.log'), 'line\n'.repeat(50_000))
      fs.utimesSync(path.join(work, 'a.log'), new Date('2010-01-01'), new Date('2011-01-01'))
      const r1 = await escp([...ssh, '-pC', 'a.log', `scp://127.0.0.1:${sshd.port}/${path.join(work, 'b.log')}`], { cwd: work })
      expect(r1.code, r1.stderr).to.equal(0)
      expect(fs.statSync(path.join(work, 'b.log')).mtime.toISOString()).to.equal('2011-01-01T00:00:00.000Z')
      const r2 = await escp([...ssh, '-p', `127.0.0.1:${path.join(work, 'b.log')}`, 'c.log'], { cwd: work })
      expect(r2.code, r2.stderr).to.equal(0)
      expect(sha256File(path.join(work, 'c.log'))).to.equal(sha256File(path.join(work, 'a.log')))
    })

    it('places trees exactly where scp -r places them', async function () {
      const scp = (args: string[]) =>
        new Promise<number | null>((resolve) => spawn('scp', ['-q', '-F', sshd.configFile, ...args], { cwd: work, stdio: 'ignore' }).on('close', resolve))
      writeRandom(path.join(work, 'tree', 'a', 'deep', 'x.bin'), 70_000)
      writeRandom(path.join(work, 'tree', 'b.bin'), 10)
      fs.mkdirSync(path.join(work, 'tree', 'empty'))
      fs.writeFileSync(path.join(work, 'one'), '1')
      fs.writeFileSync(path.join(work, 'two'), '2')
      // Each case: the operands after the tool's flags, run once by scp and once by escp, each
      // into its own fresh copy of the same destination layout.
      const cases: Array<{ name: string; prepare: (root: string) => void; operands: (root: string) => string[] }> = [
        { name: 'into a new name', prepare: () => {}, operands: (root) => ['-r', 'tree', `127.0.0.1:${root}/new`] },
        { name: 'into an existing directory', prepare: (root) => fs.mkdirSync(`${root}/have`), operands: (root) => ['-r', 'tree', `127.0.0.1:${root}/have`] },
        { name: 'with a trailing slash', prepare: () => {}, operands: (root) => ['-r', 'tree/', `127.0.0.1:${root}/slash`] },
        { name: 'several files into a directory', prepare: (root) => fs.mkdirSync(`${root}/dir`), operands: (root) => ['one', 'two', `127.0.0.1:${root}/dir/`] },
        { name: 'a file to a new name', prepare: () => {}, operands: (root) => ['one', `127.0.0.1:${root}/renamed`] },
      ]
      for (const c of cases) {
        const byScp = path.join(work, `scp-${cases.indexOf(c)}`)
        const byEscp = path.join(work, `escp-${cases.indexOf(c)}`)
        for (const root of [byScp, byEscp]) {
          fs.mkdirSync(root)
          c.prepare(root)
        }
        expect(await scp(c.operands(byScp)), `scp ${c.name}`).to.equal(0)
        const r = await escp([...ssh, ...c.operands(byEscp)], { cwd: work })
        expect(r.code, `escp ${c.name}: ${r.stderr}`).to.equal(0)
        expect(describeTree(byEscp), c.name).to.deep.equal(describeTree(byScp))
      }
    })

    it('goes through a jump host with -J', async function () {
      fs.writeFileSync(path.join(work, 'j'), 'jumped')
      const r = await escp([...ssh, '-J', '127.0.0.1', 'j', `127.0.0.1:${path.join(work, 'k')}`], { cwd: work })
      expect(r.code, r.stderr).to.equal(0)
      expect(fs.readFileSync(path.join(work, 'k'), 'utf8')).to.equal('jumped')
    })

    it('keeps paths with spaces and shell metacharacters as names, never as commands', async function () {
      const evil = path.join(work, 'dir with space; touch PWNED $(touch PWNED2) `touch PWNED3`')
      fs.mkdirSync(evil)
      fs.writeFileSync(path.join(work, "it's"), 'x')
      const r = await escp([...ssh, "it's", `127.0.0.1:${evil}`], { cwd: work })
      expect(r.code, r.stderr).to.equal(0)
      expect(fs.readFileSync(path.join(evil, "it's"), 'utf8')).to.equal('x')
      for (const p of ['PWNED', 'PWNED2', 'PWNED3']) {
        expect(fs.existsSync(path.join(work, p))).to.equal(false)
        expect(fs.existsSync(path.join(process.env.HOME ?? '/root', p))).to.equal(false)
      }
    })

    it('logs the remote side to FILE.server on its host with --logfile, the name quoted, never run', async function () {
      fs.writeFileSync(path.join(work, 'f'), 'logged')
      const logDir = path.join(work, "logs with space $(touch PWNED4) it's")
      const logfile = path.join(logDir, 'copy.log')
      // The client's log goes in a directory that exists, as rsync's --log-file.
      fs.mkdirSync(logDir)
      const r = await escp([...ssh, '--logfile', logfile, 'f', `127.0.0.1:${path.join(work, 'g')}`], { cwd: work })
      expect(r.code, r.stderr).to.equal(0)
      const lines = (file: string) => fs.readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)
      expect(lines(logfile).map((l) => l.msg)).to.include('transfer starting')
      const server = lines(`${logfile}.server`)
      const started = server.find((l) => l.msg === 'session started')
      expect(started, JSON.stringify(server)).to.include({ role: 'receiver', side: 'server', cipher: 'aes-128-gcm' })
      expect(started?.engine).to.be.a('string')
      expect(server.find((l) => l.msg === 'session done')).to.include({ filesOk: 1, filesFailed: 0, bytes: 6 })
      expect(JSON.stringify(server), 'nothing secret').to.not.match(/secret|key"/i)
      expect(fs.existsSync(path.join(work, 'PWNED4'))).to.equal(false)
      expect(fs.existsSync(path.join(process.env.HOME ?? '/root', 'PWNED4'))).to.equal(false)
    })

    it('says so when escp is missing on the remote host', async function () {
      fs.writeFileSync(path.join(work, 'f'), 'x')
      const r = await escp(['-F', sshd.configFile, '-D', '/nonexistent/escp', 'f', '127.0.0.1:/tmp/'], { cwd: work })
      expect(r.code).to.equal(3)
      expect(r.stderr).to.contain('ESCP_ERR_REMOTE_NOT_FOUND').and.contain('-D PATH')
    })

    it('shows ssh\'s own message when authentication fails', async function () {
      fs.writeFileSync(path.join(work, 'f'), 'x')
      const r = await escp(['-F', sshd.configFile, '-i', '/dev/null', '-o', 'IdentityFile=/dev/null', '-o', `IdentitiesOnly=yes`, '-o', 'IdentityAgent=none', '-D', ESCP, 'f', 'nobody@127.0.0.1:/tmp/'], { cwd: work })
      expect(r.code).to.equal(3)
      expect(r.stderr).to.contain('ESCP_ERR_SSH').and.contain('Permission denied')
    })

    it('refuses a remote escp of another major version, naming both', async function () {
      const future = path.resolve(__dirname, 'peers', 'future-escp-server.js')
      fs.writeFileSync(path.join(work, 'f'), 'x')
      const r = await escp(['-F', sshd.configFile, '-D', future, 'f', `127.0.0.1:${path.join(work, 'g')}`], { cwd: work })
      expect(r.code).to.equal(4)
      expect(r.stderr).to.contain('ESCP_ERR_VERSION_MISMATCH').and.contain(`this side speaks protocol 1.${protocol.PROTOCOL_MINOR}`).and.contain('2.0 (escp 2.0.0)')
      expect(fs.existsSync(path.join(work, 'g'))).to.equal(false)
    })

    it('explains a remote shell that prints to stdout before escp starts', async function () {
      const noisy = path.join(work, 'noisy-escp')
      fs.writeFileSync(noisy, `#!/bin/sh\necho "Welcome to the cluster"\nexec ${process.execPath} ${ESCP} "$@"\n`, { mode: 0o755 })
      fs.writeFileSync(path.join(work, 'f'), 'x')
      const r = await escp(['-F', sshd.configFile, '-D', noisy, 'f', `127.0.0.1:${path.join(work, 'g')}`], { cwd: work })
      expect(r.code).to.equal(3)
      expect(r.stderr).to.contain('ESCP_ERR_REMOTE_NOISE').and.contain('Welcome to the cluster')
    })
  })
})
