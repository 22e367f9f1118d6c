// The copy command's flags, once, without oclif: the oclif command builds its flags from this
// table, the entry point reads a plain copy's command line with it (readCopyWords: the copy,
// copy-start.ts, and its early ssh, prestart-remote.ts), and config files may set exactly these
// names.
import { parseRate, parseSize } from './units'

export type FlagKind = 'boolean' | 'string' | 'integer' | 'size' | 'rate'

export interface FlagSpec {
  kind: FlagKind
  /** Its single letter, as scp has it. */
  char?: string
  description?: string
  default?: number | string | readonly string[]
  /** Repeatable: each occurrence adds one value. */
  multiple?: true
  min?: number
  max?: number
  hidden?: true
}

export const COPY_FLAGS = {
  recursive: { kind: 'boolean', char: 'r', description: 'copy directories recursively' },
  preserve: { kind: 'boolean', char: 'p', description: 'keep modes, times (and owners as root)' },
  compress: { kind: 'boolean', char: 'C', description: 'compress blocks with zstd (blocks that do not shrink go raw)' },
  quiet: { kind: 'boolean', char: 'q', description: 'no progress, summary or warnings (errors still show)' },
  verbose: { kind: 'integer', description: 'more detail; -v, -vv', default: 0, hidden: true },
  logfile: { kind: 'string', description: 'write a JSON log to FILE; the server side writes FILE.server on its host' },
  limit: { kind: 'rate', char: 'l', description: 'per-stream rate limit, e.g. 100M (bytes/s) or 1Gbit' },
  // The protocol's MIN_BLOCK_BYTES and MAX_BLOCK_BYTES (a test keeps them the same).
  blocksize: { kind: 'size', description: 'block size (64K to 64M)', default: 1024 * 1024, min: 64 * 1024, max: 64 * 1024 * 1024 },
  parallel: { kind: 'integer', char: 't', description: 'data streams (default 4; for a local copy, one per two cores, 1 to 4; never more than the blocks of a few files sent)', min: 1, max: 128 },
  ioengine: { kind: 'string', description: "I/O engine, or SENDER::RECEIVER ('auto': posix where it loads, else node-fs; see escp engines)", default: 'auto' },
  cipher: { kind: 'string', description: "data cipher (-c is ssh's cipher, as in scp)", default: 'aes-128-gcm' },
  checksum: { kind: 'string', description: 'end-to-end checksum', default: 'xxh64' },
  nochecksum: { kind: 'boolean', description: 'skip end-to-end verification (AEAD still protects the wire)' },
  sparse: { kind: 'boolean', description: 'leave holes for all-zero blocks at the receiver' },
  nodirect: { kind: 'boolean', description: 'do not use O_DIRECT' },
  bits: { kind: 'boolean', description: 'show rates in bits per second' },
  'escp-port': { kind: 'integer', description: 'first data port of the receiver', default: 1232, min: 1, max: 65535 },
  'escp-portrange': { kind: 'integer', description: 'ports the receiver may use from the first', default: 10, min: 1, max: 1000 },
  bind: { kind: 'string', description: 'address the receiver listens on and the sender connects to' },
  cpumask: { kind: 'string', description: "CPUs for this host's stream workers, a list (0-3,8) or a hex mask (0x0f); the remote host uses its own config's cpumask" },
  'plugin-option': { kind: 'string', description: "NAME=VALUE for this host's plugins, e.g. uringQueueDepth=64 (repeatable); the remote host uses its own config's", multiple: true, default: [] },
  filelist: { kind: 'string', description: 'sources from FILE, one per line; or a YAML list of [SRC, DST] pairs, each copied in turn' },
  port: { kind: 'integer', char: 'P', description: 'ssh port', min: 1, max: 65535 },
  'ssh-option': { kind: 'string', char: 'o', description: 'ssh option (repeatable)', multiple: true, default: [] },
  ssh: { kind: 'string', char: 'S', description: 'ssh program', default: 'ssh' },
  escp: { kind: 'string', char: 'D', description: 'escp program on the remote host', default: 'escp' },
  identity: { kind: 'string', char: 'i', description: 'ssh identity file' },
  'ssh-config': { kind: 'string', char: 'F', description: 'ssh config file' },
  jump: { kind: 'string', char: 'J', description: 'ssh jump host' },
  'ssh-cipher': { kind: 'string', char: 'c', description: "ssh's cipher" },
  agent: { kind: 'boolean', char: 'A', description: 'forward the ssh agent' },
  ipv4: { kind: 'boolean', description: 'IPv4 only (-4)' },
  ipv6: { kind: 'boolean', description: 'IPv6 only (-6)' },
  batch: { kind: 'boolean', char: 'B', description: 'never ask for passwords' },
  license: { kind: 'boolean', char: 'L', description: 'print the license' },
  mgmt: { kind: 'string', description: "reach the server on this Unix socket (started by 'escp server --mgmt PATH') instead of ssh; for debugging" },
  // Accepted for scp compatibility; they change nothing here.
  sftp: { kind: 'boolean', char: 's', hidden: true },
  legacy: { kind: 'boolean', char: 'O', hidden: true },
  'no-strict-names': { kind: 'boolean', char: 'T', hidden: true },
  'remote-to-remote': { kind: 'boolean', char: 'R', hidden: true },
} as const satisfies Record<string, FlagSpec>

export type CopyFlagName = keyof typeof COPY_FLAGS

type ValueOf<F> = F extends { multiple: true } ? string[] : F extends { kind: 'boolean' } ? boolean : F extends { kind: 'string' } ? string : number

/** The flags as the command reads them: a flag with a default always has a value, a boolean only when given. */
export type CopyFlagValues = {
  -readonly [K in CopyFlagName]: (typeof COPY_FLAGS)[K] extends { default: unknown } ? ValueOf<(typeof COPY_FLAGS)[K]> : ValueOf<(typeof COPY_FLAGS)[K]> | undefined
}

/** The table, by any name. */
export const FLAG_SPECS: Readonly<Record<string, FlagSpec>> = COPY_FLAGS

/** The flag a command-line word names (`--cipher`, `-t`; no value glued on), if any. */
export function flagNamed(word: string): CopyFlagName | undefined {
  if (word.startsWith('--')) return Object.hasOwn(FLAG_SPECS, word.slice(2)) ? (word.slice(2) as CopyFlagName) : undefined
  if (word.length !== 2 || word[0] !== '-') return undefined
  return (Object.keys(FLAG_SPECS) as CopyFlagName[]).find((name) => FLAG_SPECS[name].char === word[1])
}

/** Whether `n` is within the flag's range, where it has one. */
export function inRange(spec: FlagSpec, n: number): boolean {
  return (spec.min === undefined || n >= spec.min) && (spec.max === undefined || n <= spec.max)
}

/** Whether the flag takes a value (every kind but boolean). */
export function takesValue(name: CopyFlagName): boolean {
  return FLAG_SPECS[name].kind !== 'boolean'
}

/**
 * The flags `args` (the copy command's words, as normalizeArgv leaves them) set, by long name:
 * a config file's value for one of them gives way to the command line's.
 */
export function flagsSetIn(args: readonly string[]): Set<CopyFlagName> {
  const set = new Set<CopyFlagName>()
  for (let i = 0; i < args.length; i++) {
    const a = args[i]
    if (a === '--') break
    const eq = a.startsWith('--') ? a.indexOf('=') : -1
    const name = flagNamed(eq > 0 ? a.slice(0, eq) : a)
    if (name === undefined) continue
    set.add(name)
    // Its value is the next word, whatever it looks like.
    if (eq < 0 && takesValue(name)) i++
  }
  return set
}

export interface CopyArgs {
  operands: string[]
  flags: CopyFlagValues
}

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
    const spec = FLAG_SPECS[name]
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
  for (const [name, spec] of Object.entries(FLAG_SPECS)) {
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
    return Number.isSafeInteger(n) && inRange(spec, n) ? n : undefined
  }
  try {
    const n = spec.kind === 'size' ? parseSize(raw) : parseRate(raw)
    // Out of its range: the transfer refuses it, after oclif has read it.
    return inRange(spec, n) ? n : undefined
  } catch {
    return undefined
  }
}
