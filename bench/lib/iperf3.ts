// iperf3 on the loopback interface as the reference for what plain TCP does on this machine:
// a one-off server (-1) on a free port and a client that sends a fixed number of bytes and
// reports in JSON (-J). Both run under GNU time, so their CPU counts the same way escp's does.
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { freePort } from './ports'
import { waitForListening } from './proc'
import { runTimed, startTimed, tail } from './timed-command'

const run = promisify(execFile)

export const IPERF3_INSTALL_HINT = 'install iperf3 (apt-get install iperf3)'

/** `iperf3 --version`'s first line, or null when iperf3 is not installed. */
export async function iperf3Version(): Promise<string | null> {
  try {
    const { stdout } = await run('iperf3', ['--version'])
    return stdout.split('\n')[0].trim()
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null
    throw new Error(`'iperf3 --version' failed: ${(err as Error).message}`)
  }
}

export interface Iperf3Result {
  command: string
  parallel: number
  bytes: number
  seconds: number
  gbPerSecond: number
  /** User + system seconds of the client and of the server process. */
  clientCpuSeconds: number
  serverCpuSeconds: number
  retransmits: number | null
}

/** Sends `bytes` over 127.0.0.1 with `parallel` TCP streams. */
export async function runIperf3(bytes: number, parallel: number): Promise<Iperf3Result> {
  const port = await freePort()
  const server = startTimed('iperf3', ['-s', '-1', '-B', '127.0.0.1', '-p', String(port)], { timeoutMs: 300_000 })
  try {
    await waitForListening(port, 10_000, 'the iperf3 server')
    const args = ['-c', '127.0.0.1', '-p', String(port), '-n', String(bytes), '-J', ...(parallel > 1 ? ['-P', String(parallel)] : [])]
    const client = await runTimed('iperf3', args, { timeoutMs: 300_000 })
    if (client.exitCode !== 0) throw new Error(`'${client.command}' failed (${client.timedOut ? 'timed out' : `exit ${client.exitCode}`}): ${tail(client.stdout + client.stderr)}`)
    const served = await server.done
    const report = JSON.parse(client.stdout) as Iperf3Json
    if (report.error) throw new Error(`'${client.command}': ${report.error}`)
    const received = report.end.sum_received
    return {
      command: client.command,
      parallel,
      bytes: received.bytes,
      seconds: received.seconds,
      gbPerSecond: received.bytes / received.seconds / 1e9,
      clientCpuSeconds: client.userSeconds + client.systemSeconds,
      serverCpuSeconds: served.userSeconds + served.systemSeconds,
      retransmits: report.end.sum_sent.retransmits ?? null,
    }
  } finally {
    server.kill()
    await server.done
  }
}

interface Iperf3Json {
  error?: string
  end: {
    sum_sent: { bytes: number; seconds: number; retransmits?: number }
    sum_received: { bytes: number; seconds: number }
  }
}
