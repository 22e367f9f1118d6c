// The end-to-end tests' private sshd (test/helpers/sshd.ts: 127.0.0.1, a free port, its own
// host key, one authorized throwaway client key), with what a benchmark needs on top: the
// CPU that the server side of a copy spends, and nothing left behind.
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { startSshd } from '../../test/helpers/sshd'
import { readProcCpu, waitForNoChildren } from './proc'
import type { Teardown } from './teardown'

const run = promisify(execFile)

/** Debian's sshd refuses to start without it; the test helper creates it when missing. */
const PRIVSEP_DIR = '/run/sshd'
const SSHD = ['/usr/sbin/sshd', '/usr/bin/sshd'].find((p) => fs.existsSync(p)) ?? 'sshd'

export interface BenchSshd {
  port: number
  /** The listening sshd: every session process descends from it. */
  pid: number
  /** user@127.0.0.1 */
  target: string
  /** Options for ssh, scp and rsync's ssh: the helper's client config (port, key, no host-key prompts). */
  sshOptions: string[]
  /** `ssh -V` of the client. */
  version: string
  /** The cipher a connection gets when none is asked for (as rsync -e ssh connects). */
  defaultCipher: string
  /**
   * CPU seconds of sshd and of every session process it has reaped so far (per-connection
   * sshd, sftp-server, a remote rsync): the server's half of a copy, which the client's
   * `time` never sees. Read it after waitIdle().
   */
  serverCpuSeconds(): number
  /** Resolves true once every session has ended and been reaped. */
  waitIdle(timeoutMs?: number): Promise<boolean>
}

/** Starts the private sshd; `teardown` stops it and removes what it created. */
export async function startBenchSshd(teardown: Teardown): Promise<BenchSshd> {
  const privsepExisted = fs.existsSync(PRIVSEP_DIR)
  const sshd = await startSshd()
  if (typeof sshd === 'string') throw new Error(`cannot start a private sshd: ${sshd}`)
  if (!privsepExisted) teardown.add(`remove ${PRIVSEP_DIR}`, () => fs.rmdirSync(PRIVSEP_DIR))
  teardown.add(`stop the private sshd on port ${sshd.port}`, () => sshd.stop())
  const pid = await readPidFile(path.join(sshd.dir, 'sshd.pid'))
  const sshOptions = ['-F', sshd.configFile]
  const target = `${os.userInfo().username}@127.0.0.1`
  try {
    await run('ssh', [...sshOptions, target, 'true'], { timeout: 20_000 })
  } catch (err) {
    const e = err as Error & { stderr?: string }
    throw new Error(`cannot log in to the private sshd on port ${sshd.port}: ${(e.stderr ?? '').trim() || e.message}`)
  }
  const { stderr: version } = await run('ssh', ['-V'])
  // ssh takes the first cipher of its own list that the server also offers.
  const ciphersOf = (text: string) => text.match(/^ciphers (.*)$/m)?.[1].split(',') ?? []
  const clientCiphers = ciphersOf((await run('ssh', ['-G', ...sshOptions, target])).stdout)
  const serverCiphers = new Set(ciphersOf((await run(SSHD, ['-T', '-f', path.join(sshd.dir, 'sshd_config')])).stdout))
  return {
    port: sshd.port,
    pid,
    target,
    sshOptions,
    version: version.trim(),
    defaultCipher: clientCiphers.find((c) => serverCiphers.has(c)) ?? 'unknown',
    serverCpuSeconds: () => {
      const cpu = readProcCpu(pid)
      return cpu ? cpu.userSeconds + cpu.systemSeconds + cpu.childrenUserSeconds + cpu.childrenSystemSeconds : NaN
    },
    waitIdle: (timeoutMs = 10_000) => waitForNoChildren(pid, timeoutMs),
  }
}

/** sshd writes its pid file right after it starts listening. */
async function readPidFile(file: string): Promise<number> {
  const deadline = Date.now() + 5000
  for (;;) {
    let pid = 0
    try {
      pid = Number(fs.readFileSync(file, 'utf8').trim())
    } catch {
      // Not written yet.
    }
    if (pid > 0) return pid
    if (Date.now() > deadline) throw new Error(`sshd wrote no pid to ${file}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}
