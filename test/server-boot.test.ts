// Start-up of a local copy: the loopback child starts the stream workers it is told to expect
// before it loads the rest of escp, and a plugin it cannot load is still reported cleanly; the
// escp command starts its own before it loads oclif, and the copy takes them; so does `escp
// server` when its environment says how many streams come. Real processes.
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { expect } from 'chai'
import { V8_FLAGS } from '@escp/core'
import { skipBecause } from '@escp/core/testing'
import { startSshd } from './helpers/sshd'
import type { PrivateSshd } from './helpers/sshd'
import { tempDir } from './helpers/trees'

const SERVER_MAIN = path.resolve(__dirname, '../packages/core/dist/transfer/server-main.js')
const ESCP = path.resolve(__dirname, '../packages/cli/bin/run.js')

/**
 * Loaded before server-main (node -r): at each worker thread's creation, at each child process
 * it spawns (and then its command line too), and as the process exits, it prints the modules the
 * process has loaded so far, as one JSON line on stderr; at each V8 flag set, a line in the file RECORD_V8_FLAGS names: the
 * process, how many worker threads it had made by then, and the flag.
 */
const RECORDER = `
process.on('exit', () => process.stderr.write('EXIT ' + process.pid + ' ' + JSON.stringify(Object.keys(require.cache)) + '\\n'))
const childProcess = require('node:child_process')
const spawn = childProcess.spawn
childProcess.spawn = function (file, ...rest) {
  process.stderr.write('SPAWN ' + process.pid + ' ' + JSON.stringify(file) + ' ' + JSON.stringify(Object.keys(require.cache)) + '\\n')
  process.stderr.write('ARGV ' + JSON.stringify([file, ...(Array.isArray(rest[0]) ? rest[0] : [])]) + '\\n')
  const child = spawn.call(this, file, ...rest)
  process.stderr.write('CHILD ' + JSON.stringify(file) + ' ' + child.pid + '\\n')
  return child
}
const threads = require('node:worker_threads')
const Worker = threads.Worker
let workersMade = 0
threads.Worker = class extends Worker {
  constructor(...args) {
    process.stderr.write('WORKER ' + process.pid + ' ' + JSON.stringify(Object.keys(require.cache)) + '\\n')
    super(...args)
    workersMade++
  }
}
// Into a file: the loopback child's stderr goes to its parent, which shows only its end on failure.
const v8 = require('node:v8')
const setFlagsFromString = v8.setFlagsFromString
v8.setFlagsFromString = function (flag) {
  if (process.env.RECORD_V8_FLAGS) require('node:fs').appendFileSync(process.env.RECORD_V8_FLAGS, process.pid + ' ' + workersMade + ' ' + flag + '\\n')
  return setFlagsFromString.call(this, flag)
}
`

interface Run {
  pid: number
  status: number | null
  stderr: string
  /** Per worker thread made, in order: the process that made it, and the modules it had loaded then. */
  workers: { pid: number; modules: string[] }[]
}

/** Runs `args` with the recorder loaded first (its own and its children's Node processes). */
function recordedWorkers(stderr: string): Run['workers'] {
  return stderr
    .split('\n')
    .filter((l) => l.startsWith('WORKER '))
    .map((l) => {
      const [, pid, modules] = /^WORKER (\d+) (.*)$/.exec(l) as RegExpExecArray
      return { pid: Number(pid), modules: JSON.parse(modules) as string[] }
    })
}

function runRecorded(args: string[], env: NodeJS.ProcessEnv, input = ''): Run {
  const dir = tempDir('server-boot')
  try {
    const recorder = path.join(dir, 'recorder.js')
    fs.writeFileSync(recorder, RECORDER)
    const r = spawnSync(process.execPath, args, { input, encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: `--require ${recorder}`, ...env }, timeout: 30_000 })
    return { pid: r.pid, status: r.status, stderr: r.stderr, workers: recordedWorkers(r.stderr) }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

// No client: stdin is empty, so the server reads the end of its control channel and stops.
function runServer(env: NodeJS.ProcessEnv): { status: number | null; stderr: string; workers: string[][] } {
  const r = runRecorded([SERVER_MAIN], env)
  return { ...r, workers: r.workers.map((w) => w.modules) }
}

const loaded = (modules: string[], file: string) => modules.some((m) => m.endsWith(file))

describe('the loopback child starting up', function () {
  this.timeout(60_000)

  it('starts the stream workers it is told to expect before it loads the rest of escp', function () {
    const { workers, stderr } = runServer({ ESCP_BOOT_STREAMS: '2', ESCP_PLUGINS: '' })
    expect(workers.length, stderr).to.equal(2)
    const first = workers[0]
    expect(loaded(first, `${path.sep}worker-boot.js`)).to.equal(true)
    for (const heavy of [`${path.sep}server-run.js`, `${path.sep}plugins${path.sep}loader.js`, `${path.sep}protocol${path.sep}control-channel.js`, `${path.sep}tsyringe${path.sep}`]) {
      expect(first.filter((m) => m.includes(heavy)), `${heavy} loaded before the first worker`).to.deep.equal([])
    }
  })

  it('starts no worker early when it is not told how many streams come', function () {
    const { workers } = runServer({ ESCP_BOOT_STREAMS: '', ESCP_PLUGINS: '' })
    expect(workers).to.deep.equal([])
  })

  it('reports a plugin it cannot load with ESCP_ERR_PLUGIN_LOAD and a non-zero status, having started no worker for it', function () {
    const { status, stderr, workers } = runServer({ ESCP_BOOT_STREAMS: '2', ESCP_PLUGINS: '/nonexistent/escp-plugin.js' })
    expect(status).to.equal(1)
    expect(stderr).to.match(/escp server: ESCP_ERR_PLUGIN_LOAD: .*\/nonexistent\/escp-plugin\.js/)
    expect(stderr).not.to.match(/\n\s+at /)
    expect(workers).to.deep.equal([])
  })
})

describe('the escp command starting a local copy', function () {
  this.timeout(60_000)

  it('starts its stream worker before it loads oclif, and the copy takes it rather than starting another', function () {
    const dir = tempDir('command-boot')
    try {
      fs.writeFileSync(path.join(dir, 'a'), 'one byte or so')
      const r = runRecorded([ESCP, '-q', '-t', '1', path.join(dir, 'a'), path.join(dir, 'b')], { ESCP_CONFIG: '/dev/null', ESCP_PLUGINS: '' })
      expect(r.status, r.stderr).to.equal(0)
      expect(fs.readFileSync(path.join(dir, 'b'), 'utf8')).to.equal('one byte or so')
      // The command is the process whose first worker was made before any other process's.
      const command = r.workers.filter((w) => w.modules.some((m) => m.endsWith(`${path.sep}run.js`)))
      expect(command.length, 'worker threads the command made').to.equal(1)
      expect(command[0].modules.filter((m) => m.includes(`${path.sep}@oclif${path.sep}`)), 'oclif loaded before the worker').to.deep.equal([])
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
  it('copies without loading oclif when its command line reads plainly, and leaves the rest to oclif', function () {
    const dir = tempDir('command-plain')
    try {
      fs.writeFileSync(path.join(dir, 'a'), 'one byte or so')
      const env = { ESCP_CONFIG: '/dev/null', ESCP_PLUGINS: '', HOME: dir, XDG_DATA_HOME: path.join(dir, 'share') }
      const plain = runRecorded([ESCP, '-q', '-rp', '--cipher', 'aes-256-gcm', path.join(dir, 'a'), path.join(dir, 'b')], env)
      expect(plain.status, plain.stderr).to.equal(0)
      expect(fs.readFileSync(path.join(dir, 'b'), 'utf8')).to.equal('one byte or so')
      expect(oclifIn(modulesAtExit(plain.stderr).get(plain.pid) ?? ['none recorded']), 'oclif loaded by the command').to.deep.equal([])

      // A value that looks like a flag: oclif reads it, and the copy is the same.
      const odd = runRecorded([ESCP, '-q', '-o', '-x', path.join(dir, 'a'), path.join(dir, 'c')], env)
      expect(odd.status, odd.stderr).to.equal(0)
      expect(fs.readFileSync(path.join(dir, 'c'), 'utf8')).to.equal('one byte or so')
      expect(oclifIn(modulesAtExit(odd.stderr).get(odd.pid) ?? []).length, 'oclif loaded by the command').to.be.greaterThan(0)

      // A plugin installed through oclif (its data directory has a package.json): oclif runs the command.
      fs.mkdirSync(path.join(dir, 'share', 'escp'), { recursive: true })
      fs.writeFileSync(path.join(dir, 'share', 'escp', 'package.json'), '{"private": true, "oclif": {"plugins": []}, "dependencies": {}}')
      const installed = runRecorded([ESCP, '-q', path.join(dir, 'a'), path.join(dir, 'd')], env)
      expect(installed.status, installed.stderr).to.equal(0)
      expect(fs.readFileSync(path.join(dir, 'd'), 'utf8')).to.equal('one byte or so')
      expect(oclifIn(modulesAtExit(installed.stderr).get(installed.pid) ?? []).length, 'oclif loaded by the command').to.be.greaterThan(0)
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  it("sets V8's flags once its stream workers run, in the command and in the loopback child; a program embedding the core keeps its own", function () {
    const dir = tempDir('command-tiering')
    try {
      fs.writeFileSync(path.join(dir, 'a'), 'one byte or so')
      const record = path.join(dir, 'flags-command')
      const r = runRecorded([ESCP, '-q', '-t', '1', path.join(dir, 'a'), path.join(dir, 'b')], { ESCP_CONFIG: '/dev/null', ESCP_PLUGINS: '', RECORD_V8_FLAGS: record })
      expect(r.status, r.stderr).to.equal(0)
      const flags = flagsSet(record)
      const child = Number(/^CHILD \S+ (\d+)$/m.exec(r.stderr)?.[1])
      expect([...flags.keys()].sort(), 'processes that set flags').to.deep.equal([r.pid, child].sort())
      for (const set of flags.values()) {
        expect(set.map((f) => f.flag)).to.deep.equal(V8_FLAGS)
        // One worker each: -t 1.
        for (const f of set) expect(f.workersMade, 'worker threads made before the flag').to.equal(1)
      }

      // copy() called by a program of its own: only the loopback child, escp's, sets them.
      const program = path.join(dir, 'embed.js')
      fs.writeFileSync(program, `require('@escp/core').copy({ sources: [${JSON.stringify(path.join(dir, 'a'))}], destination: ${JSON.stringify(path.join(dir, 'c'))}, options: {} }).then((s) => process.exit(s.ok ? 0 : 1))`)
      const embedRecord = path.join(dir, 'flags-embedded')
      const e = runRecorded([program], { ESCP_PLUGINS: '', NODE_PATH: path.resolve(__dirname, '../node_modules'), RECORD_V8_FLAGS: embedRecord })
      expect(e.status, e.stderr).to.equal(0)
      expect(fs.readFileSync(path.join(dir, 'c'), 'utf8')).to.equal('one byte or so')
      const embeddedChild = Number(/^CHILD \S+ (\d+)$/m.exec(e.stderr)?.[1])
      expect([...flagsSet(embedRecord).keys()]).to.deep.equal([embeddedChild])
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})

/** The V8 flags each process set, from the recorder's RECORD_V8_FLAGS file, by pid, each with the count of worker threads the process had made by then. */
function flagsSet(file: string): Map<number, { flag: string; workersMade: number }[]> {
  const out = new Map<number, { flag: string; workersMade: number }[]>()
  for (const l of fs.existsSync(file) ? fs.readFileSync(file, 'utf8').split('\n') : []) {
    const m = /^(\d+) (\d+) (.*)$/.exec(l)
    if (!m) continue
    const pid = Number(m[1])
    out.set(pid, [...(out.get(pid) ?? []), { flag: m[3], workersMade: Number(m[2]) }])
  }
  return out
}

/** The modules each process had loaded as it exited, by pid. */
function modulesAtExit(stderr: string): Map<number, string[]> {
  const out = new Map<number, string[]>()
  for (const l of stderr.split('\n')) {
    const m = /^EXIT (\d+) (.*)$/.exec(l)
    if (m) out.set(Number(m[1]), JSON.parse(m[2]) as string[])
  }
  return out
}

const oclifIn = (modules: string[]) => modules.filter((m) => m.includes(`${path.sep}@oclif${path.sep}`))

describe('escp server starting up', function () {
  this.timeout(60_000)

  /**
   * Pushes a file through `escp server` (recorded) on a --mgmt socket, which stands in for ssh's
   * stdio: the same command, the same start-up. The server is told 2 streams come; `home` is its HOME.
   */
  async function pushThroughServer(dir: string, home: string): Promise<{ workers: Run['workers']; modules: string[]; stderr: string }> {
    const recorder = path.join(dir, 'recorder.js')
    fs.writeFileSync(recorder, RECORDER)
    fs.writeFileSync(path.join(dir, 'a'), 'pushed to a server')
    const sock = path.join(dir, 'mgmt.sock')
    const env = { ...process.env, ESCP_CONFIG: '/dev/null', ESCP_PLUGINS: '' }
    const serverEnv = { ...env, NODE_OPTIONS: `--require ${recorder}`, ESCP_BOOT_STREAMS: '2', HOME: home, XDG_DATA_HOME: '', ESCP_DATA_DIR: '' }
    const server = spawn(process.execPath, [ESCP, 'server', '--mgmt', sock], { env: serverEnv, stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    server.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    const exited = new Promise<number | null>((resolve) => server.once('exit', resolve))
    for (let i = 0; i < 200 && !fs.existsSync(sock); i++) await new Promise((r) => setTimeout(r, 50))
    const client = spawnSync(process.execPath, [ESCP, '-q', '-t', '2', '--mgmt', sock, path.join(dir, 'a'), `127.0.0.1:${path.join(dir, 'b')}`], { env, encoding: 'utf8', timeout: 30_000 })
    expect(client.status, client.stderr).to.equal(0)
    expect(await exited, stderr).to.equal(0)
    expect(fs.readFileSync(path.join(dir, 'b'), 'utf8')).to.equal('pushed to a server')
    return { workers: recordedWorkers(stderr), modules: modulesAtExit(stderr).get(server.pid as number) ?? [], stderr }
  }

  it('starts the stream workers its environment says come before it loads the rest, takes them, and never loads oclif', async function () {
    const dir = tempDir('remote-boot')
    try {
      const { workers, modules, stderr } = await pushThroughServer(dir, dir)
      expect(workers.length, 'worker threads the server made').to.equal(2)
      expect(modules.length, stderr).to.be.greaterThan(0)
      expect(oclifIn(modules), 'oclif loaded by the server').to.deep.equal([])
      for (const w of workers) expect(w.modules.filter((m) => m.endsWith(`${path.sep}server-start.js`)), 'the server loaded before its workers').to.deep.equal([])
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  it('runs through oclif on a host where a plugin may be installed through it, its workers still started first', async function () {
    const dir = tempDir('remote-boot-oclif')
    try {
      // What `escp plugins install` leaves in oclif's data directory, with nothing installed.
      fs.mkdirSync(path.join(dir, '.local', 'share', 'escp'), { recursive: true })
      fs.writeFileSync(path.join(dir, '.local', 'share', 'escp', 'package.json'), JSON.stringify({ private: true, oclif: { schema: 1, plugins: [] } }))
      const { workers, modules } = await pushThroughServer(dir, dir)
      expect(oclifIn(modules).length, 'oclif loaded by the server').to.be.greaterThan(0)
      expect(workers.length, 'worker threads the server made').to.equal(2)
      for (const w of workers) expect(oclifIn(w.modules), 'oclif loaded before the worker').to.deep.equal([])
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  it('reports a bad config of its host as escp server does, with status 1', function () {
    const dir = tempDir('remote-config')
    try {
      fs.writeFileSync(path.join(dir, 'bad.yaml'), 'parallel: 4\nnot-a-flag: 1\n')
      const r = spawnSync(process.execPath, [ESCP, 'server'], { env: { ...process.env, ESCP_CONFIG: path.join(dir, 'bad.yaml'), HOME: dir }, encoding: 'utf8', input: '', timeout: 30_000 })
      expect(r.status).to.equal(1)
      expect(r.stderr).to.match(/^escp server: ESCP_ERR_CONFIG: .*bad\.yaml.*'not-a-flag' is not an escp flag/m)
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  it('starts no worker early without the hint', function () {
    const { status, stderr, workers } = runRecorded([ESCP, 'server'], { ESCP_CONFIG: '/dev/null', ESCP_PLUGINS: '', ESCP_BOOT_STREAMS: '' })
    // No client: the control channel ends at once, as a refused handshake would.
    expect(status).to.equal(1)
    expect(stderr).to.contain('escp server:')
    expect(workers).to.deep.equal([])
  })
})

describe('what a stream worker loads with the bundled plugins', function () {
  this.timeout(30_000)

  // A worker loads each plugin of its session as it starts; a plugin that loads @escp/core's
  // index brings the transfer and protocol modules into every worker with it.
  for (const plugin of ['@escp/engine-posix', '@escp/engine-uring', '@escp/engine-shm', '@escp/core/plugin']) {
    it(`${plugin} loads none of escp's transfer or protocol modules`, function () {
      const script = `require(${JSON.stringify(plugin)}); process.stdout.write(JSON.stringify(Object.keys(require.cache)))`
      const r = spawnSync(process.execPath, ['-e', script], { cwd: path.resolve(__dirname, '../packages/cli'), encoding: 'utf8', timeout: 20_000 })
      expect(r.status, r.stderr).to.equal(0)
      const modules = JSON.parse(r.stdout) as string[]
      const core = `${path.sep}core${path.sep}dist${path.sep}`
      const heavy = modules.filter((m) => m.endsWith(`${core}index.js`) || m.includes(`${core}transfer${path.sep}`) || m.includes(`${core}protocol${path.sep}`))
      expect(heavy).to.deep.equal([])
    })
  }
})

describe('the escp command starting a copy to a remote host', function () {
  this.timeout(60_000)
  let sshd: PrivateSshd | undefined

  before(async function () {
    const s = await startSshd()
    if (typeof s === 'string') skipBecause(this, s)
    sshd = s as PrivateSshd
  })

  after(async function () {
    await sshd?.stop()
  })

  /** The programs the command spawned (by the recorder), with what it had loaded then. */
  function spawns(stderr: string, file: string): string[][] {
    return stderr
      .split('\n')
      .map((l) => /^SPAWN \d+ (\S+) (.*)$/.exec(l))
      .filter((m): m is RegExpExecArray => m !== null && JSON.parse(m[1]) === file)
      .map((m) => JSON.parse(m[2]) as string[])
  }

  function push(dir: string, env: NodeJS.ProcessEnv, flags = ['-q', '-t', '2'], content: string | Buffer = 'pushed early'): Run {
    fs.writeFileSync(path.join(dir, 'a'), content)
    const cfg = (sshd as PrivateSshd).configFile
    const r = runRecorded([ESCP, ...flags, '-F', cfg, '-D', ESCP, path.join(dir, 'a'), `127.0.0.1:${path.join(dir, 'b')}`], { ESCP_PLUGINS: '', ...env })
    expect(r.status, r.stderr).to.equal(0)
    expect(fs.readFileSync(path.join(dir, 'b')).equals(Buffer.from(content))).to.equal(true)
    return r
  }

  /** The command lines of the ssh processes the command started. */
  function sshCommands(stderr: string): string[][] {
    return stderr
      .split('\n')
      .filter((l) => l.startsWith('ARGV '))
      .map((l) => JSON.parse(l.slice('ARGV '.length)) as string[])
      .filter((argv) => argv[0] === 'ssh')
  }

  it('starts ssh before it loads oclif, and the copy takes it rather than starting another', function () {
    const dir = tempDir('remote-prestart')
    try {
      const r = push(dir, { ESCP_CONFIG: '/dev/null' })
      const ssh = spawns(r.stderr, 'ssh')
      expect(ssh.length, 'ssh processes the command started').to.equal(1)
      expect(oclifIn(ssh[0]), 'oclif loaded before ssh started').to.deep.equal([])
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  it('with no stream count, starts ssh for as many streams as the file makes blocks (up to 4), and the copy takes it', function () {
    const dir = tempDir('remote-prestart-streams')
    try {
      for (const { content, flags, streams } of [
        { content: 'one byte or so', flags: [], streams: 1 },
        // 1.2 MiB in blocks of 512 KiB: 3 blocks, read from --blocksize by the early start too.
        { content: Buffer.alloc(1.2 * 2 ** 20, 7), flags: ['--blocksize', '512K'], streams: 3 },
        { content: Buffer.alloc(5 * 2 ** 20, 7), flags: [], streams: 4 },
        { content: 'one byte or so', flags: ['-t', '3'], streams: 3 },
      ]) {
        fs.rmSync(path.join(dir, 'b'), { force: true })
        const r = push(dir, { ESCP_CONFIG: '/dev/null' }, flags, content)
        const ssh = sshCommands(r.stderr)
        expect(ssh.length, 'ssh processes the command started').to.equal(1)
        expect(oclifIn(spawns(r.stderr, 'ssh')[0]), 'oclif loaded before ssh started').to.deep.equal([])
        expect(ssh[0].join(' ')).to.include(`ESCP_BOOT_STREAMS=${streams} `)
        expect(r.stderr).to.match(new RegExp(`, ${streams} streams?, `))
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  it('stops the ssh it started when the command fails before copying', async function () {
    const dir = tempDir('remote-prestart-fails')
    try {
      // An "ssh" that would wait long after escp is gone, as ssh asking for a password would.
      const fake = path.join(dir, 'slow-ssh')
      fs.writeFileSync(fake, '#!/bin/sh\nexec sleep 60\n', { mode: 0o755 })
      fs.writeFileSync(path.join(dir, 'a'), 'x')
      // A command line the early start reads whole, and a cipher the copy does not know: it exits before copying.
      const r = runRecorded([ESCP, '-q', '--cipher', 'no-such-cipher', '-S', fake, path.join(dir, 'a'), `127.0.0.1:${path.join(dir, 'b')}`], { ESCP_CONFIG: '/dev/null', ESCP_PLUGINS: '' })
      expect(r.status).to.equal(2)
      expect(r.stderr).to.match(/^escp: .*no-such-cipher/m)
      const pids = r.stderr.split('\n').flatMap((l) => {
        const m = /^CHILD (\S+) (\d+)$/.exec(l)
        return m && JSON.parse(m[1]) === fake ? [Number(m[2])] : []
      })
      expect(pids.length, 'early ssh processes').to.equal(1)
      // Gone, or a zombie (it ended; its parent, escp, is gone too, and init may reap it late).
      const alive = () => {
        try {
          const stat = fs.readFileSync(`/proc/${pids[0]}/stat`, 'utf8')
          return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z'
        } catch {
          return false
        }
      }
      for (let i = 0; i < 40 && alive(); i++) await new Promise((resolve) => setTimeout(resolve, 50))
      expect(alive(), 'the early ssh still runs').to.equal(false)
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  it('leaves ssh to the copy when a config file may change its command line', function () {
    const dir = tempDir('remote-prestart-config')
    try {
      fs.writeFileSync(path.join(dir, 'escp.yaml'), 'quiet: true\n')
      const r = push(dir, { ESCP_CONFIG: path.join(dir, 'escp.yaml') })
      const ssh = spawns(r.stderr, 'ssh')
      expect(ssh.length, 'ssh processes the command started').to.equal(1)
      // The copy started it, not the early start, which loads none of the copy's modules.
      expect(loaded(ssh[0], `${path.sep}run-copy.js`), 'the copy loaded before ssh started').to.equal(true)
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})
