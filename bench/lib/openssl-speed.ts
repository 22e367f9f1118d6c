// `openssl speed` as a reference beside escp's own figures: what the same CPU and library do
// with no JavaScript, no per-record set-up and no allocation in the way.
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'

const run = promisify(execFile)

/** The `openssl version` line, or null when no openssl is installed. */
export async function opensslCliVersion(): Promise<string | null> {
  try {
    const { stdout } = await run('openssl', ['version'])
    return stdout.trim()
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null
    throw new Error(`'openssl version' failed: ${(err as Error).message}`)
  }
}

export interface OpensslSpeed {
  command: string
  gbPerSecond: number
}

/**
 * Encryption throughput of an EVP cipher on `bytes`-byte buffers. -elapsed divides by wall
 * time, as escp's own figures do (the default, user CPU time, reads high on a busy machine);
 * -mr makes the output parseable.
 */
export async function opensslSpeed(evp: string, bytes: number, seconds: number): Promise<OpensslSpeed> {
  const args = ['speed', '-elapsed', '-mr', '-seconds', String(seconds), '-bytes', String(bytes), '-evp', evp]
  const command = `openssl ${args.join(' ')}`
  let stdout: string
  let stderr: string
  try {
    ;({ stdout, stderr } = await run('openssl', args))
  } catch (err) {
    const e = err as Error & { stderr?: string }
    throw new Error(`'${command}' failed: ${(e.stderr ?? '').trim() || e.message}`)
  }
  // "+F:<index>:<algorithm>:<bytes per second for each size>", one size here.
  const figure = stdout.match(/^\+F:\d+:[^:]+:([0-9.]+)\s*$/m)?.[1]
  if (figure === undefined) {
    throw new Error(`'${command}' printed no '+F:' result line; output was:\n${stdout}${stderr}`)
  }
  return { command, gbPerSecond: Number(figure) / 1e9 }
}
