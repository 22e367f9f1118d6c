// A local copy's receiver is a child process of the escp command. Started here, from the entry
// point, before oclif and the command's modules load, the child's own start-up (Node, escp's
// core and its plugins) overlaps the command's instead of following it; so does that of the
// command's own stream workers, started here too. `escp server`, told how many streams come,
// starts its workers here as well.
import { DEFAULT_OPTIONS, loopbackStreams, prestartLoopbackServer, prestartServerWorkers, prestartStreamWorkers, streamsFor } from '@escp/core/loopback'
import { bundledPluginModules } from './bundled'

/**
 * Flags after which the command does something else than copy here with the bundled plugins:
 * a usage message, sources from a file (maybe remote), a control socket, or a child set apart
 * by its CPUs, log file or plugin options. With any of them, the copy starts its own child if it needs one.
 */
const NOT_PLAIN = ['--help', '-h', '--filelist', '--mgmt', '--cpumask', '--logfile', '--plugin-option']

/**
 * Starts the loopback child and this process's stream workers for `args` (normalized: the
 * command first) when they are a plain local copy: the copy command, at least two operands, no ':' in any argument (a remote
 * operand has one: host:path, scp://), and no extra plugins. Says whether it started one.
 */
export function prestartForLocalCopy(args: readonly string[], env: NodeJS.ProcessEnv = process.env): boolean {
  if (args[0] !== 'copy' || (env.ESCP_PLUGINS ?? '').trim() !== '') return false
  const rest = args.slice(1)
  if (rest.some((a) => a.includes(':') || NOT_PLAIN.some((f) => a === f || a.startsWith(`${f}=`)))) return false
  const operands = rest.filter((a) => !a.startsWith('-'))
  if (operands.length < 2) return false
  // As copy() counts them, with the default block size; a flag's value read as a source makes
  // a name that is not there (the default count) or one more file (more streams): never too few.
  const streams = streamsAsked(rest) ?? streamsFor(operands.slice(0, -1), DEFAULT_OPTIONS.blockSizeBytes, loopbackStreams())
  prestartLoopbackServer(bundledPluginModules(), streams)
  prestartStreamWorkers(bundledPluginModules(), streams)
  return true
}

// -t N or --parallel N (or --parallel=N): only a hint to the child, which boots that many workers.
function streamsAsked(args: readonly string[]): number | undefined {
  for (let i = 0; i < args.length; i++) {
    const a = args[i]
    const value = a === '-t' || a === '--parallel' ? args[i + 1] : a.startsWith('--parallel=') ? a.slice('--parallel='.length) : undefined
    const n = Number(value)
    if (value !== undefined && Number.isInteger(n) && n >= 1 && n <= 128) return n
  }
  return undefined
}

/**
 * For `escp server` (args normalized: the command first) whose environment says how many
 * streams come (ESCP_BOOT_STREAMS, from the client's remote command): starts its stream workers
 * with the bundled plugins before oclif loads. Says whether it was a server's start.
 */
export function prestartForServer(args: readonly string[], env: NodeJS.ProcessEnv = process.env): boolean {
  if (args[0] !== 'server') return false
  prestartServerWorkers(bundledPluginModules(), env)
  return true
}

/**
 * Whether `args` (normalized: the command first) may be a copy to or from a remote host: the
 * copy command with an argument naming one (host:path, scp://). Only then does the entry point
 * load prestart-remote, which reads them whole.
 */
export function mayBeRemoteCopy(args: readonly string[]): boolean {
  return args[0] === 'copy' && args.slice(1).some((a) => !a.startsWith('-') && a.includes(':'))
}
