import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { expect } from 'chai'
import type { Availability } from '../contracts/availability'

/** Asserts that `fn` throws (or rejects with) an error carrying `code`. */
export async function expectCode(fn: () => unknown, code: string): Promise<unknown> {
  let caught: unknown
  try {
    await fn()
  } catch (err) {
    caught = err
  }
  expect(caught, `expected an error with code ${code}`).to.be.an('error')
  expect((caught as { code?: unknown }).code, String((caught as Error).message)).to.equal(code)
  return caught
}

/** Skips a test or suite, saying why (as a user would want to know). */
export function skipBecause(ctx: Mocha.Context, reason: string): never {
  console.log(`      skipped: ${reason}`)
  ctx.skip()
}

/** Skips a suite whose implementation cannot run here, saying why. */
export function skipIfUnavailable(ctx: Mocha.Context, what: string, availability: Availability): void {
  if (!availability.ok) skipBecause(ctx, `${what} is unavailable here: ${availability.reason}`)
}

export interface ScratchMount {
  dir: string
  unmount(): void
}

/**
 * A file system of its own (`mount -t TYPE -o OPTIONS`) in a new temporary directory, for tests
 * of a full disk or of a file system without O_DIRECT; needs root. Returns why not when it
 * cannot be had.
 */
export function mountScratch(type: 'tmpfs' | 'ramfs', options: readonly string[] = []): ScratchMount | string {
  if (process.getuid?.() !== 0) return `mounting a ${type} needs root`
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `escp-${type}-`))
  const r = spawnSync('mount', ['-t', type, ...(options.length ? ['-o', options.join(',')] : []), type, dir], { encoding: 'utf8' })
  if (r.status !== 0) {
    fs.rmdirSync(dir)
    return `cannot mount a ${type} here (${(r.stderr || r.error?.message || `mount exited ${r.status}`).trim()})`
  }
  return {
    dir,
    unmount: () => {
      spawnSync('umount', [dir])
      fs.rmdirSync(dir)
    },
  }
}

/** Text that compresses like logs do. */
export function logLikeText(sizeBytes: number): Buffer {
  const lines: string[] = []
  let total = 0
  for (let i = 0; total < sizeBytes; i++) {
    const line = `2026-11-25T10:${String(i % 60).padStart(2, '0')}:00Z INFO worker=${i % 7} request=${(i * 7919) % 100000} path=/api/v1/items/${i % 313} status=200 ms=${(i * 31) % 997}\n`
    lines.push(line)
    total += line.length
  }
  return Buffer.from(lines.join('')).subarray(0, sizeBytes)
}

/**
 * Open file descriptors of this process (Linux), to check that handles are released; with
 * `under`, only those on files below that directory, so that descriptors other work in the same
 * process opens or closes meanwhile (a socket, a child's pipes) do not count.
 */
export function openFdCount(under?: string): number | undefined {
  let fds: string[]
  try {
    fds = fs.readdirSync('/proc/self/fd')
  } catch {
    return undefined
  }
  if (under === undefined) return fds.length
  const prefix = fs.realpathSync(under) + '/'
  let n = 0
  for (const fd of fds) {
    try {
      if (fs.readlinkSync(`/proc/self/fd/${fd}`).startsWith(prefix)) n++
    } catch {
      // closed meanwhile
    }
  }
  return n
}

const O_DIRECT = 0o40000

/** For each descriptor this process holds on `file`, whether it has O_DIRECT (Linux, from /proc/self/fdinfo). */
export function directFlags(file: string): boolean[] {
  const out: boolean[] = []
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    let target: string
    try {
      target = fs.readlinkSync(`/proc/self/fd/${fd}`)
    } catch {
      continue
    }
    if (target !== file) continue
    const flags = /flags:\s+([0-7]+)/.exec(fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))
    out.push(flags !== null && (parseInt(flags[1], 8) & O_DIRECT) !== 0)
  }
  return out
}
