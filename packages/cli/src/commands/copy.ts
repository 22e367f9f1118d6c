// escp [flags] SRC... DEST: the scp-shaped copy command, as oclif runs it (its help, its
// errors, plugins installed through it); the entry point runs a plain copy without oclif
// (copy-start.ts). Both read the flags of copy-flags.ts and run copy-command.ts.
import { Args, Command, Flags } from '@oclif/core'
import type { Interfaces } from '@oclif/core'
import { runCopyCommand, withConfigDefaults } from '../copy-command'
import { COPY_FLAGS } from '../copy-flags'
import type { CopyFlagValues, FlagSpec } from '../copy-flags'
import { EXIT, exitCodeOf } from '../exit-codes'
import { escpPluginModules } from './engines'
import { parseRate, parseSize } from '../units'

const size = Flags.custom<number>({ parse: async (s) => parseSize(s) })
const rate = Flags.custom<number>({ parse: async (s) => parseRate(s) })

type Letter = Interfaces.AlphabetLowercase | Interfaces.AlphabetUppercase

/** The oclif flag for one of copy-flags.ts. */
function oclifFlag(spec: FlagSpec) {
  const common = { description: spec.description, hidden: spec.hidden, ...(spec.char ? { char: spec.char as Letter } : {}) }
  switch (spec.kind) {
    case 'boolean':
      return Flags.boolean(common)
    case 'integer':
      return Flags.integer({ ...common, min: spec.min, max: spec.max, ...(spec.default !== undefined ? { default: spec.default as number } : {}) })
    case 'size':
      return size({ ...common, ...(spec.default !== undefined ? { default: spec.default as number } : {}) })
    case 'rate':
      return rate(common)
    case 'string':
      return spec.multiple
        ? Flags.string({ ...common, multiple: true, multipleNonGreedy: true, default: [...(spec.default as readonly string[])] })
        : Flags.string({ ...common, ...(spec.default !== undefined ? { default: spec.default as string } : {}) })
  }
}

const FLAGS: Interfaces.FlagInput = Object.fromEntries(Object.entries(COPY_FLAGS).map(([name, spec]) => [name, oclifFlag(spec)]))

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

  static override flags = FLAGS

  // Every failure is one line on stderr, `escp: ESCP_ERR_CODE: ...`, and an exit code from
  // exit-codes.ts: parse errors of oclif's own included (its default is a multi-line message,
  // no code and exit 1).
  override async catch(err: Error & { oclif?: { exit?: number }; code?: string }): Promise<void> {
    // this.exit() throws oclif's ExitError: the message was already printed.
    if (err.code === 'EEXIT') process.exit(err.oclif?.exit ?? 0)
    const message = err.message.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('See more help')).join(' ')
    if (err.code?.startsWith('ESCP_ERR_')) {
      // Ours, as thrown, or as oclif rethrows it from a flag's parse with its message put
      // after 'Parsing --limit': printed from its code on, once.
      process.stderr.write(`escp: ${message.slice(Math.max(0, message.indexOf(`${err.code}: `)))}\n`)
      process.exit(exitCodeOf(err))
    }
    // oclif's own errors (CLIError and its parse errors) carry `oclif`: a flag it cannot read.
    if (err.oclif !== undefined) {
      process.stderr.write(`escp: ESCP_ERR_BAD_ARGUMENT: ${message}\n`)
      process.exit(EXIT.usage)
    }
    process.stderr.write(`escp: ${message}\n`)
    process.exit(exitCodeOf(err))
  }

  override async run(): Promise<void> {
    const { flags, raw } = await this.parse({ ...Copy, strict: false }, withConfigDefaults(this.argv))
    if (flags.license) {
      this.log(LICENSE)
      return
    }
    // The operands in the order given: oclif's argv puts a word at its first place in the whole
    // line (`escp -i k a k` would copy k over a), as the entry point's own reading does not.
    const operands = raw.filter((t) => t.type === 'arg').map((t) => t.input)
    const code = await runCopyCommand(operands, flags as unknown as CopyFlagValues, escpPluginModules(this.config.plugins.values()))
    if (code !== EXIT.ok) this.exit(code)
  }
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
