// The copy command run by the entry point without oclif, for a command line it can read
// exactly as oclif would; anything else (help, an unknown, repeated or malformed flag, a bad
// config file, a plugin installed through oclif) is left to oclif, which reads and reports it
// as always. Loading oclif, its plugins and its config costs a copy some 60 ms and 0.12 CPU s
// on 2 cores (a one-byte local copy: 0.30 s through oclif, 0.24 s through copy()).
import { bundledPluginModules } from './bundled'
import { configFiles } from './config'
import { runCopyCommand, withConfigDefaults } from './copy-command'
import { COPY_FLAGS, flagNamed } from './copy-flags'
import type { CopyFlagValues, FlagSpec } from './copy-flags'
import { pluginsMayBeInstalled } from './server-start'
import { parseRate, parseSize } from './units'

export interface CopyArgs {
  operands: string[]
  flags: CopyFlagValues
}

const SPECS: Record<string, FlagSpec> = COPY_FLAGS

/**
 * The copy command's operands and flags from `words` (its command line after 'copy', as
 * normalizeArgv leaves it, config defaults first), with the flags' defaults; null where oclif
 * could read them otherwise, or would refuse them: then oclif reads them.
 */
export function readCopyWords(words: readonly string[]): CopyArgs | null {
  const operands: string[] = []
  const values: Record<string, unknown> = {}
  for (let i = 0; i < words.length; i++) {
    const w = words[i]
    if (w === '--') {
      operands.push(...words.slice(i + 1))
      break
    }
    if (!w.startsWith('-') || w === '-') {
      operands.push(w)
      continue
    }
    const eq = w.startsWith('--') ? w.indexOf('=') : -1
    const name = flagNamed(eq > 0 ? w.slice(0, eq) : w)
    if (name === undefined) return null
    const spec = SPECS[name]
    if (spec.kind === 'boolean') {
      // oclif reads --recursive=true as the flag and an operand 'true'.
      if (eq > 0) return null
      values[name] = true
      continue
    }
    const raw = eq > 0 ? w.slice(eq + 1) : words[++i]
    // A missing value, or one that looks like a flag: oclif's to read or refuse.
    if (raw === undefined || raw.startsWith('-')) return null
    const value = valueOf(spec, raw)
    if (value === undefined) return null
    if (spec.multiple) values[name] = [...((values[name] as string[] | undefined) ?? []), value]
    else if (name in values) return null
    else values[name] = value
  }
  for (const [name, spec] of Object.entries(SPECS)) {
    if (!(name in values) && spec.default !== undefined) values[name] = Array.isArray(spec.default) ? [...spec.default] : spec.default
  }
  return { operands, flags: values as CopyFlagValues }
}

// The flag's value as oclif parses it, or undefined where oclif would refuse it.
function valueOf(spec: FlagSpec, raw: string): string | number | undefined {
  if (spec.kind === 'string') return raw
  if (spec.kind === 'integer') {
    if (!/^\d+$/.test(raw)) return undefined
    const n = Number(raw)
    return Number.isSafeInteger(n) && (spec.min === undefined || n >= spec.min) && (spec.max === undefined || n <= spec.max) ? n : undefined
  }
  try {
    const n = spec.kind === 'size' ? parseSize(raw) : parseRate(raw)
    // Out of its range: the transfer refuses it, after oclif has read it.
    return (spec.min === undefined || n >= spec.min) && (spec.max === undefined || n <= spec.max) ? n : undefined
  } catch {
    return undefined
  }
}

/**
 * The copy's operands and flags when the entry point can run `args` (normalized: 'copy' first)
 * itself: no plugin installed through oclif, a config that loads, and a command line
 * readCopyWords reads, with nothing that prints instead of copying (--license).
 */
export function copyArgsWithoutOclif(args: readonly string[], env: NodeJS.ProcessEnv = process.env): CopyArgs | null {
  if (args[0] !== 'copy' || pluginsMayBeInstalled(env)) return null
  let words: string[]
  try {
    words = withConfigDefaults(args.slice(1), configFiles(env))
  } catch {
    return null
  }
  const read = readCopyWords(words)
  return read && !read.flags.license ? read : null
}

/** Runs the copy with the plugins the command ships; resolves to the exit status. */
export function copyWithoutOclif(read: CopyArgs): Promise<number> {
  return runCopyCommand(read.operands, read.flags, bundledPluginModules())
}
