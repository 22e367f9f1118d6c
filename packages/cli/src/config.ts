// Defaults for any flag from /etc/escp.conf, then ~/.config/escp/config.yaml (flags on the
// command line win). Both are YAML maps of long flag names to values:
//   parallel: 8
//   cipher: chacha20-poly1305
//   ssh-option: ["Compression=no"]
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { escpError } from '@escp/core/loopback'
import type { Document, LineCounter } from 'yaml'
import { FLAG_SPECS as SPECS, inRange } from './copy-flags'
import type { FlagSpec } from './copy-flags'
import { parseRate, parseSize } from './units'

export type ConfigValues = Record<string, string | number | boolean | string[]>

export function configFiles(env: NodeJS.ProcessEnv = process.env): string[] {
  if (env.ESCP_CONFIG) return [env.ESCP_CONFIG]
  const home = env.HOME ?? os.homedir()
  return ['/etc/escp.conf', path.join(env.XDG_CONFIG_HOME ?? path.join(home, '.config'), 'escp', 'config.yaml')]
}

/**
 * Reads and merges the config files that exist; a bad one is an error naming file and line: a
 * name not in `known`, or a value the flag of that name in COPY_FLAGS would refuse on the
 * command line (`escp server` reads the same files: each host's config is checked alike).
 */
export function loadConfig(files: readonly string[], known: ReadonlySet<string>): ConfigValues {
  const merged: ConfigValues = {}
  for (const file of files) {
    let text: string
    try {
      text = fs.readFileSync(file, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue
      throw escpError('ESCP_ERR_CONFIG', file, 0, (err as Error).message)
    }
    // An empty file (ESCP_CONFIG=/dev/null) sets nothing, and needs no parser.
    if (text.trim() === '') continue
    const { LineCounter, parseDocument } = yaml()
    const lines = new LineCounter()
    const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false })
    if (doc.errors.length > 0) {
      const e = doc.errors[0]
      throw escpError('ESCP_ERR_CONFIG', file, lines.linePos(e.pos[0]).line, e.message.split('\n')[0])
    }
    const value = doc.toJS() as unknown
    if (value === null || value === undefined) continue
    if (typeof value !== 'object' || Array.isArray(value)) throw escpError('ESCP_ERR_CONFIG', file, 1, 'expected a map of flag names to values')
    for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
      const line = lineOf(doc, lines, key)
      if (!known.has(key)) throw escpError('ESCP_ERR_CONFIG', file, line, `'${key}' is not an escp flag (known: ${[...known].sort().join(', ')})`)
      const problem = valueProblem(key, v)
      if (problem !== undefined) throw escpError('ESCP_ERR_CONFIG', file, line, problem)
      merged[key] = v as ConfigValues[string]
    }
  }
  return merged
}

/**
 * What is wrong with `v` as the config value of the flag `key`, or undefined when it is of the
 * flag's kind and in its range. Names (a cipher, an engine) are for the transfer to check.
 */
function valueProblem(key: string, v: unknown): string | undefined {
  // A name the caller knows beyond the table takes any one string, as before the table was read.
  const spec: FlagSpec = Object.hasOwn(SPECS, key) ? SPECS[key] : { kind: 'string' }
  if (Array.isArray(v)) {
    if (!spec.multiple) return `'${key}' takes one value, not a list`
    return v.every((x) => typeof x === 'string') ? undefined : `'${key}' must be a list of strings`
  }
  if (spec.kind === 'boolean') return typeof v === 'boolean' ? undefined : `'${key}' takes true or false, not '${String(v)}'`
  if (v === null) return `'${key}' has no value`
  if (typeof v === 'object') return `'${key}' takes one value, not a map`
  const text = String(v)
  switch (spec.kind) {
    case 'string':
      // YAML reads `cpumask: 0x0f` as the number 15 (a CPU list's 15): a string must be written as one.
      if (typeof v === 'number') return `'${key}' takes a string, not the number ${text}; quote it if it is one ('${text}')`
      return typeof v === 'boolean' ? `'${key}' takes a string, not ${text}` : undefined
    case 'integer': {
      // As oclif reads an integer flag.
      const n = /^-?\d+$/.test(text) ? Number(text) : NaN
      if (Number.isSafeInteger(n) && inRange(spec, n)) return undefined
      const range =
        spec.min !== undefined && spec.max !== undefined ? ` from ${spec.min} to ${spec.max}` : spec.min !== undefined ? ` of at least ${spec.min}` : spec.max !== undefined ? ` of at most ${spec.max}` : ''
      return `'${key}' must be an integer${range}, not '${text}'`
    }
    case 'size':
    case 'rate':
      try {
        const n = spec.kind === 'size' ? parseSize(text) : parseRate(text)
        if (!inRange(spec, n)) return `'${key}' must be from ${spec.min} to ${spec.max} bytes, not '${text}'`
        return undefined
      } catch (err) {
        // Its message without the code: the config error has its own.
        return `'${key}': ${(err as Error).message.replace(/^ESCP_ERR_\w+: /, '')}`
      }
  }
}

/**
 * The YAML parser, loaded when a config file is there to read: loading it takes some 16 ms, on
 * the way to every copy's first byte on both hosts, and most hosts have no config file.
 */
export function yaml(): typeof import('yaml') {
  return require('yaml') as typeof import('yaml')
}

function lineOf(doc: Document.Parsed, lines: LineCounter, key: string): number {
  const contents = doc.contents as { items?: Array<{ key?: { value?: unknown; range?: [number, number, number] } }> } | null
  const item = contents?.items?.find((i) => i.key?.value === key)
  return item?.key?.range ? lines.linePos(item.key.range[0]).line : 1
}

/** Turns config values into argv placed before the user's own flags, so the user's win. */
export function configArgv(values: ConfigValues, booleans: ReadonlySet<string>): string[] {
  const out: string[] = []
  for (const [key, v] of Object.entries(values)) {
    // loadConfig let only true or false through for a boolean.
    if (booleans.has(key)) {
      if (v === true) out.push(`--${key}`)
    } else if (Array.isArray(v)) {
      for (const x of v) out.push(`--${key}`, x)
    } else {
      out.push(`--${key}`, String(v))
    }
  }
  return out
}
