// Test helpers: the example C producer, compiled once per run with gcc, and ways to watch it.
import { spawn, spawnSync } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import readline from 'node:readline'

const PKG = path.join(__dirname, '..')
type Built = { ok: true; path: string } | { ok: false; reason: string }
const built = new Map<string, Built>()

/** An example program (examples/NAME.c) compiled with gcc into a temporary directory; or why it cannot be. */
export function cExample(name: 'producer' | 'consumer'): Built {
  const known = built.get(name)
  if (known) return known
  const probe = spawnSync('gcc', ['--version'], { encoding: 'utf8' })
  if (probe.error || probe.status !== 0) {
    const no: Built = { ok: false, reason: `gcc is not installed, so the C ${name} cannot be built` }
    built.set(name, no)
    return no
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `escp-shm-${name}-`))
  // The programs serve every test of the run; they go when the run ends.
  process.once('exit', () => fs.rmSync(dir, { recursive: true, force: true }))
  const out = path.join(dir, name)
  const r = spawnSync('gcc', ['-O2', '-Wall', '-Wextra', '-Werror', '-I', path.join(PKG, 'include'), path.join(PKG, `examples/${name}.c`), path.join(PKG, 'src/escp_shm.c'), '-o', out], { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`the C ${name} did not compile:\n${r.stderr}`)
  const ok: Built = { ok: true, path: out }
  built.set(name, ok)
  return ok
}

/** The example producer (see cExample). */
export function cProducer(): Built {
  return cExample('producer')
}

export interface Producer {
  child: ChildProcess
  /** Resolves once the stream has begun. */
  begun: Promise<void>
  /** Resolves once the producer has ended its stream (it printed its digest). */
  ended: Promise<void>
  /** The digest line: { sha256, bytes }, and the exit code. */
  result: Promise<{ sha256: string; bytes: number; code: number | null; stderr: string }>
}

export function startProducer(binary: string, args: string[]): Producer {
  const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  child.stderr?.setEncoding('utf8').on('data', (s: string) => (stderr += s))
  let onBegun: () => void = () => {}
  const begun = new Promise<void>((resolve, reject) => {
    onBegun = resolve
    child.once('exit', (code) => reject(new Error(`the producer exited (${code}) before its stream began: ${stderr}`)))
  })
  begun.catch(() => {})
  let onEnded: () => void = () => {}
  const ended = new Promise<void>((resolve, reject) => {
    onEnded = resolve
    child.once('exit', (code) => reject(new Error(`the producer exited (${code}) before it ended its stream: ${stderr}`)))
  })
  ended.catch(() => {})
  let digest = { sha256: '', bytes: -1 }
  const lines = readline.createInterface({ input: child.stdout as NodeJS.ReadableStream })
  lines.on('line', (line) => {
    if (line === 'begun') onBegun()
    const m = /^sha256 ([0-9a-f]{64}) bytes (\d+)$/.exec(line)
    if (m) {
      digest = { sha256: m[1], bytes: Number(m[2]) }
      onEnded()
    }
  })
  const result = new Promise<{ sha256: string; bytes: number; code: number | null; stderr: string }>((resolve) => {
    child.once('close', (code) => resolve({ ...digest, code, stderr }))
  })
  return { child, begun, ended, result }
}

/** A region name no other test or run uses. */
export function uniqueRegionName(what: string): string {
  return `test-${what}-${process.pid}-${crypto.randomBytes(3).toString('hex')}`
}

/** CPU time (user + system, in clock ticks) a process has used, from /proc. */
export function cpuTicks(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  // Fields 14 and 15 of stat (utime, stime), counted after the ") " that ends comm.
  return Number(fields[11]) + Number(fields[12])
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))
