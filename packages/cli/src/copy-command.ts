// What the copy command does once its flags are read, by oclif (commands/copy.ts) or by the
// entry point itself (copy-start.ts): config defaults, file lists, the transfer, exit status.
import fs from 'node:fs'
import type { PluginOptionValue, SessionLog, TransferOptions, TransferSummary } from '@escp/core'
import { escpError, parseCpuSet, parsePluginOption } from '@escp/core'
import { configArgv, configFiles, loadConfig, yaml } from './config'
import { COPY_FLAGS, flagsSetIn } from './copy-flags'
import type { CopyFlagValues } from './copy-flags'
import { EXIT, exitCodeOf } from './exit-codes'
import { planCopy, serverLogFile, sshOptionsOf } from './plan'
import { openClientLog, runPlan } from './run-copy'

/**
 * The command line with this host's config files' defaults put before the user's words, for
 * the flags the user does not set: a flag on the command line replaces the config's value (a
 * repeatable one, all its values). Throws ESCP_ERR_CONFIG for a bad config file.
 */
export function withConfigDefaults(words: readonly string[], files: readonly string[] = configFiles()): string[] {
  const config = loadConfig(files, new Set(Object.keys(COPY_FLAGS)))
  const set = flagsSetIn(words)
  const defaults = Object.fromEntries(Object.entries(config).filter(([name]) => !set.has(name as keyof typeof COPY_FLAGS)))
  const booleans = new Set(Object.entries(COPY_FLAGS).filter(([, f]) => f.kind === 'boolean').map(([name]) => name))
  return [...configArgv(defaults, booleans), ...words]
}

/** Runs the copy command with its flags read; resolves to the exit status. Errors go to stderr, one line each. */
export async function runCopyCommand(operands: string[], flags: CopyFlagValues, plugins: string[]): Promise<number> {
  let jobs: string[][]
  let cpus: number[] | undefined
  let pluginOptions: Record<string, PluginOptionValue>
  let log: SessionLog | undefined
  try {
    jobs = flags.filelist ? readFileList(flags.filelist, operands) : [operands]
    if (jobs.some((job) => job.length < 2)) throw escpError('ESCP_ERR_BAD_ARGUMENT', 'give at least one source and a destination (escp [flags] SRC... DEST; see escp --help)')
    cpus = flags.cpumask === undefined ? undefined : parseCpuSet(flags.cpumask)
    pluginOptions = Object.fromEntries(flags['plugin-option'].map(parsePluginOption))
    // One log for every job of a file list, refused before anything is copied.
    log = flags.logfile ? openClientLog(flags.logfile, flags.verbose) : undefined
  } catch (err) {
    process.stderr.write(`escp: ${(err as Error).message}\n`)
    return exitCodeOf(err)
  }
  const options: Partial<TransferOptions> = {
    ...(cpus ? { cpus } : {}),
    ...(flags.logfile ? { serverLogFile: serverLogFile(flags.logfile) } : {}),
    recursive: flags.recursive,
    preserve: flags.preserve,
    compressor: flags.compress ? 'zstd' : 'none',
    ...(flags.parallel !== undefined ? { streams: flags.parallel } : {}),
    blockSizeBytes: flags.blocksize,
    engine: flags.ioengine,
    cipher: flags.cipher,
    checksum: flags.nochecksum ? 'none' : flags.checksum,
    sparse: flags.sparse,
    direct: !flags.nodirect,
    port: flags['escp-port'],
    portRange: flags['escp-portrange'],
    ...(flags.bind ? { bindAddress: flags.bind } : {}),
    ...(flags.limit ? { limitBytesPerSec: flags.limit } : {}),
    plugins,
    pluginOptions,
  }
  let worst: number = EXIT.ok
  for (const job of jobs) {
    const code = await copyOnce(job, options, flags, log)
    worst = Math.max(worst, code)
    // Stopped by a signal: the jobs after it are not started.
    if (code === EXIT.interrupted) break
  }
  return worst
}

async function copyOnce(operands: string[], options: Partial<TransferOptions>, flags: CopyFlagValues, log: SessionLog | undefined): Promise<number> {
  let plan: ReturnType<typeof planCopy>
  try {
    plan = planCopy(operands, sshOptionsOf(flags), flags.blocksize)
  } catch (err) {
    process.stderr.write(`escp: ${(err as Error).message}\n`)
    return exitCodeOf(err)
  }
  let summary: TransferSummary
  try {
    summary = await runPlan(plan, options, { mgmt: flags.mgmt, quiet: flags.quiet === true, bits: flags.bits === true, verbose: flags.verbose, log, err: process.stderr })
  } catch (err) {
    process.stderr.write(`escp: ${(err as Error).message}\n`)
    return exitCodeOf(err)
  }
  return summary.ok ? EXIT.ok : EXIT.partial
}

/**
 * A file list, as EScp reads one: a YAML list of [SRC, DST] pairs (one copy each), or plain
 * lines naming sources for the destination given on the command line.
 */
export function readFileList(file: string, argv: readonly string[]): string[][] {
  let text: string
  try {
    text = fs.readFileSync(file, 'utf8')
  } catch (err) {
    throw escpError('ESCP_ERR_BAD_ARGUMENT', `cannot read the file list '${file}': ${(err as Error).message}`)
  }
  if (/^\s*-\s*\[/m.test(text)) {
    const { LineCounter, parseDocument } = yaml()
    const lines = new LineCounter()
    const doc = parseDocument(text, { lineCounter: lines })
    if (doc.errors.length > 0) throw escpError('ESCP_ERR_CONFIG', file, lines.linePos(doc.errors[0].pos[0]).line, doc.errors[0].message.split('\n')[0])
    const pairs = doc.toJS() as unknown
    if (!Array.isArray(pairs) || !pairs.every((p) => Array.isArray(p) && p.length === 2 && p.every((x) => typeof x === 'string' && x.length > 0))) {
      throw escpError('ESCP_ERR_CONFIG', file, 1, 'expected a list of [SRC, DST] pairs')
    }
    if (argv.length > 0) throw escpError('ESCP_ERR_BAD_ARGUMENT', 'a file list of [SRC, DST] pairs names every destination; give no operands with it')
    return pairs as string[][]
  }
  const sources = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.length > 0 && !l.startsWith('#'))
  return [[...sources, ...argv]]
}
