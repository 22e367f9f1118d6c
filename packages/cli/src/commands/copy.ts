// escp [flags] SRC... DEST: the scp-shaped copy command.
import fs from 'node:fs'
import { Args, Command, Flags } from '@oclif/core'
import type { Interfaces } from '@oclif/core'
import type { PluginOptionValue, TransferOptions, TransferSummary } from '@escp/core'
import { configArgv, configFiles, loadConfig, yaml } from '../config'
import { escpError, parseCpuSet, parsePluginOption } from '@escp/core'
import { EXIT, exitCodeOf } from '../exit-codes'
import { escpPluginModules } from './engines'
import { planCopy, serverLogFile, sshOptionsOf } from '../plan'
import { runPlan } from '../run-copy'
import { parseRate, parseSize } from '../units'

const size = Flags.custom<number>({ parse: async (s) => parseSize(s) })
const rate = Flags.custom<number>({ parse: async (s) => parseRate(s) })

export default class Copy extends Command {
  static override summary = 'Copy files like scp, over parallel encrypted streams'
  static override description = `Copies SRC... to DEST. Each operand is a local path, [user@]host:path, [user@][v6addr]:path
or scp://[user@]host[:port]/path. With no host anywhere, the copy runs in loopback mode: the
receiver is a child process and the data still crosses encrypted TCP streams.

Other commands: escp engines (plugins and their availability), escp plugins (install third-party plugins).`
  static override usage = '[flags] SRC... DEST'
  static override strict = false
  static override examples = ['escp -r data/ dtn2:/archive/', 'escp dtn2:/archive/run1.h5 .', 'escp -t 8 -C logs.tar /mnt/backup/']

  static override args = { operands: Args.string({ description: 'sources, then the destination', required: false }) }

  static override flags = {
    recursive: Flags.boolean({ char: 'r', description: 'copy directories recursively' }),
    preserve: Flags.boolean({ char: 'p', description: 'keep modes, times (and owners as root)' }),
    compress: Flags.boolean({ char: 'C', description: 'compress blocks with zstd (blocks that do not shrink go raw)' }),
    quiet: Flags.boolean({ char: 'q', description: 'no progress and no summary' }),
    verbose: Flags.integer({ description: 'more detail; -v, -vv', default: 0, hidden: true }),
    logfile: Flags.string({ description: 'write a JSON log to FILE; the server side writes FILE.server on its host' }),
    limit: rate({ char: 'l', description: 'per-stream rate limit, e.g. 100M (bytes/s) or 1Gbit' }),
    blocksize: size({ description: 'block size (64K to 64M)', default: 1024 * 1024 }),
    parallel: Flags.integer({ char: 't', description: 'data streams (default 4; for a local copy, one per two cores, 1 to 4; never more than the blocks of a few files sent)', min: 1, max: 128 }),
    ioengine: Flags.string({ description: "I/O engine, or SENDER::RECEIVER ('auto': posix where it loads, else node-fs; see escp engines)", default: 'auto' }),
    cipher: Flags.string({ description: 'data cipher (-c is ssh\'s cipher, as in scp)', default: 'aes-128-gcm' }),
    checksum: Flags.string({ description: 'end-to-end checksum', default: 'xxh64' }),
    nochecksum: Flags.boolean({ description: 'skip end-to-end verification (AEAD still protects the wire)' }),
    sparse: Flags.boolean({ description: 'leave holes for all-zero blocks at the receiver' }),
    nodirect: Flags.boolean({ description: 'do not use O_DIRECT' }),
    bits: Flags.boolean({ description: 'show rates in bits per second' }),
    'escp-port': Flags.integer({ description: 'first data port of the receiver', default: 1232, min: 1, max: 65535 }),
    'escp-portrange': Flags.integer({ description: 'ports the receiver may use from the first', default: 10, min: 1, max: 1000 }),
    bind: Flags.string({ description: 'address the receiver listens on and the sender connects to' }),
    cpumask: Flags.string({ description: "CPUs for this host's stream workers, a list (0-3,8) or a hex mask (0x0f); the remote host uses its own config's cpumask" }),
    'plugin-option': Flags.string({ description: "NAME=VALUE for this host's plugins, e.g. uringQueueDepth=64 (repeatable); the remote host uses its own config's", multiple: true, multipleNonGreedy: true, default: [] }),
    filelist: Flags.string({ description: 'sources from FILE, one per line; or a YAML list of [SRC, DST] pairs, each copied in turn' }),
    port: Flags.integer({ char: 'P', description: 'ssh port', min: 1, max: 65535 }),
    'ssh-option': Flags.string({ char: 'o', description: 'ssh option (repeatable)', multiple: true, multipleNonGreedy: true, default: [] }),
    ssh: Flags.string({ char: 'S', description: 'ssh program', default: 'ssh' }),
    escp: Flags.string({ char: 'D', description: 'escp program on the remote host', default: 'escp' }),
    identity: Flags.string({ char: 'i', description: 'ssh identity file' }),
    'ssh-config': Flags.string({ char: 'F', description: 'ssh config file' }),
    jump: Flags.string({ char: 'J', description: 'ssh jump host' }),
    'ssh-cipher': Flags.string({ char: 'c', description: "ssh's cipher" }),
    agent: Flags.boolean({ char: 'A', description: 'forward the ssh agent' }),
    ipv4: Flags.boolean({ description: 'IPv4 only (-4)' }),
    ipv6: Flags.boolean({ description: 'IPv6 only (-6)' }),
    batch: Flags.boolean({ char: 'B', description: 'never ask for passwords' }),
    license: Flags.boolean({ char: 'L', description: 'print the license' }),
    mgmt: Flags.string({ description: "reach the server on this Unix socket (started by 'escp server --mgmt PATH') instead of ssh; for debugging" }),
    // Accepted for scp compatibility; they change nothing here.
    sftp: Flags.boolean({ char: 's', hidden: true }),
    legacy: Flags.boolean({ char: 'O', hidden: true }),
    'no-strict-names': Flags.boolean({ char: 'T', hidden: true }),
    'remote-to-remote': Flags.boolean({ char: 'R', hidden: true }),
  }

  // Every failure is one line on stderr and an exit code from exit-codes.ts: parse errors of
  // oclif's own included (its default is a multi-line message and exit 1).
  override async catch(err: Error & { oclif?: { exit?: number }; code?: string }): Promise<void> {
    // this.exit() throws oclif's ExitError: the message was already printed.
    if (err.code === 'EEXIT') process.exit(err.oclif?.exit ?? 0)
    const message = err.message.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('See more help')).join(' ')
    process.stderr.write(`escp: ${message}\n`)
    const code = err.code?.startsWith('ESCP_ERR_') ? exitCodeOf(err) : EXIT.usage
    process.exit(code)
  }

  override async run(): Promise<void> {
    const known = new Set(Object.keys(Copy.flags))
    const booleans = new Set(Object.entries(Copy.flags).filter(([, f]) => f.type === 'boolean').map(([k]) => k))
    const fromConfig = configArgv(loadConfig(configFiles(), known), booleans)
    const { argv, flags } = await this.parse({ ...Copy, strict: false }, [...fromConfig, ...this.argv])
    if (flags.license) {
      this.log(LICENSE)
      return
    }
    let jobs: string[][]
    try {
      jobs = flags.filelist ? readFileList(flags.filelist, argv as string[]) : [argv as string[]]
    } catch (err) {
      process.stderr.write(`escp: ${(err as Error).message}\n`)
      this.exit(exitCodeOf(err))
    }
    if (jobs.some((operands) => operands.length < 2)) {
      process.stderr.write('escp: ESCP_ERR_BAD_ARGUMENT: give at least one source and a destination (escp [flags] SRC... DEST; see escp --help)\n')
      this.exit(EXIT.usage)
    }
    let cpus: number[] | undefined
    let pluginOptions: Record<string, PluginOptionValue>
    try {
      cpus = flags.cpumask === undefined ? undefined : parseCpuSet(flags.cpumask)
      pluginOptions = Object.fromEntries(flags['plugin-option'].map(parsePluginOption))
    } catch (err) {
      process.stderr.write(`escp: ${(err as Error).message}\n`)
      this.exit(exitCodeOf(err))
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
      plugins: escpPluginModules(this.config.plugins.values()),
      pluginOptions,
    }
    let worst: number = EXIT.ok
    for (const operands of jobs) worst = Math.max(worst, await this.copyOnce(operands, options, flags))
    if (worst !== EXIT.ok) this.exit(worst)
  }

  private async copyOnce(operands: string[], options: Partial<TransferOptions>, flags: CopyFlags): Promise<number> {
    let plan: ReturnType<typeof planCopy>
    try {
      plan = planCopy(operands, sshOptionsOf(flags), flags.blocksize)
    } catch (err) {
      process.stderr.write(`escp: ${(err as Error).message}\n`)
      return exitCodeOf(err)
    }
    let summary: TransferSummary
    try {
      summary = await runPlan(plan, options, { mgmt: flags.mgmt, quiet: flags.quiet, bits: flags.bits, verbose: flags.verbose, logfile: flags.logfile, err: process.stderr })
    } catch (err) {
      process.stderr.write(`escp: ${(err as Error).message}\n`)
      return exitCodeOf(err)
    }
    return summary.ok ? EXIT.ok : EXIT.partial
  }
}

type CopyFlags = Interfaces.InferredFlags<typeof Copy.flags>

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

const LICENSE = `escp is distributed under the BSD 3-Clause License.

Redistribution and use in source and binary forms, with or without modification, are permitted
provided that the following conditions are met: (1) redistributions of source code must retain
the copyright notice, this list of conditions and the following disclaimer; (2) redistributions
in binary form must reproduce the copyright notice, this list of conditions and the following
disclaimer in the documentation and/or other materials provided with the distribution; (3) the
names of the copyright holders and contributors may not be used to endorse or promote products
derived from this software without specific prior written permission.

THIS SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND.`
