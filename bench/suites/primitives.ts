// The building blocks of a transfer on one core: every available cipher, compressor and
// checksum in the plugin registry (built-ins and plugins named in ESCP_PLUGINS, loaded as the
// product loads them), at escp's block sizes, beside `openssl speed` for the same ciphers.
import crypto from 'node:crypto'
import { loadPlugins, pluginsFromEnv } from '@escp/core'
import type { Checksum, Cipher, Compressor, PluginEntry, PluginKind } from '@escp/core'
import { logLikeText } from '@escp/core/testing'
import { parseSuiteArgs } from '../lib/args'
import { describeMachine, loadAverage, loadLine, machineLine, startRun } from '../lib/machine'
import type { MachineInfo, RunConditions } from '../lib/machine'
import { opensslCliVersion, opensslSpeed } from '../lib/openssl-speed'
import { publishResults, repoPath } from '../lib/results'
import { formatRate, markdownTable } from '../lib/table'
import { DEFAULT_THROUGHPUT, measureThroughput } from '../lib/throughput'
import type { Throughput } from '../lib/throughput'

const SUITE = 'primitives'
const BLOCK_SIZES = [64 * 1024, 1024 * 1024] as const
/** What escp offers that OpenSSL implements; measured with `openssl speed -evp` when installed. */
const OPENSSL_CIPHERS = ['aes-128-gcm', 'aes-256-gcm', 'chacha20-poly1305']
const OPENSSL_SECONDS = 1
/** Levels measured besides a compressor's default: zstd -1 is the candidate for fast links. */
const EXTRA_LEVELS: Readonly<Record<string, readonly number[]>> = { zstd: [1] }
/** A record header's worth of additional authenticated data. */
const AAD_BYTES = 16
const CORE_PLUGIN = '@escp/core'

type Data = 'random' | 'text'

interface Measurement {
  kind: 'cipher' | 'compressor' | 'checksum' | 'openssl'
  name: string
  /** Plugin package that provides it, or 'openssl' for the command-line reference. */
  plugin: string
  /** Compression level, for compressors. */
  level?: number
  /** True when `level` is the compressor's defaultLevel. */
  defaultLevel?: boolean
  operation: 'seal' | 'open' | 'compress' | 'decompress' | 'block' | 'encrypt'
  data: Data | 'openssl buffer'
  blockSizeBytes: number
  /** Null when there was nothing to measure or the measurement failed; `note` says which. */
  gbPerSecond: number | null
  note?: string
  throughput?: Omit<Throughput, 'gbPerSecond'>
  /** For compress: bytes out, or null when the block would not shrink and is sent raw. */
  compressedBytes?: number | null
  /** For compress: uncompressed / compressed bytes (1 when sent raw). */
  ratio?: number
  command?: string
}

export async function run(args: readonly string[] = []): Promise<void> {
  parseSuiteArgs(SUITE, args, {})
  const clock = startRun()
  const machine = describeMachine()
  const opensslVersion = await opensslCliVersion()
  const set = await loadPlugins({ plugins: pluginsFromEnv() })
  const { registry } = set

  const available = (kind: PluginKind) => registry.list(kind).filter((e) => e.availability.ok)
  const skipped = (['cipher', 'compressor', 'checksum'] as const).flatMap((kind) =>
    registry.list(kind).flatMap((e) => (e.availability.ok ? [] : [{ kind, name: e.name, plugin: e.plugin, reason: e.availability.reason }])),
  )

  progress(`primitives: ${machine.cpuModel}, ${machine.nproc} cores, Node ${machine.node}, load average ${loadAverage().join(' ')}`)
  progress(`plugins: ${set.plugins.map((p) => p.manifest.name).join(', ')}`)
  for (const s of skipped) progress(`skipped ${s.kind} '${s.name}' (${s.plugin}): ${s.reason}`)

  const random = new Map(BLOCK_SIZES.map((n) => [n, crypto.randomBytes(n)]))
  const text = new Map(BLOCK_SIZES.map((n) => [n, logLikeText(n)]))
  const measurements: Measurement[] = []
  const record = (m: Measurement) => {
    measurements.push(m)
    const label = `${m.kind} ${m.name}${m.level === undefined ? '' : ` level ${m.level}`} ${m.operation} ${m.data} ${sizeLabel(m.blockSizeBytes)}`
    progress(`  ${label}: ${m.gbPerSecond === null ? m.note : `${formatRate(m.gbPerSecond)} GB/s`}`)
  }

  // openssl runs right after escp's cipher of the same name, so both see the same machine load.
  const opensslPending = new Set(opensslVersion === null ? [] : OPENSSL_CIPHERS)
  for (const entry of available('cipher')) {
    measureCipher(registry.resolve('cipher', entry.name), entry, random).forEach(record)
    if (opensslPending.delete(entry.name)) (await measureOpenssl(entry.name)).forEach(record)
  }
  for (const name of opensslPending) (await measureOpenssl(name)).forEach(record)

  for (const entry of available('compressor')) {
    const comp = registry.resolve('compressor', entry.name)
    const levels = [comp.defaultLevel, ...(EXTRA_LEVELS[entry.name] ?? []).filter((l) => l !== comp.defaultLevel)]
    for (const level of levels) {
      for (const [data, inputs] of [['random', random], ['text', text]] as const) {
        measureCompressor(comp, entry, level, data, inputs).forEach(record)
      }
    }
  }

  for (const entry of available('checksum')) {
    measureChecksum(registry.resolve('checksum', entry.name), entry, random).forEach(record)
  }

  const report: PrimitivesReport = {
    suite: SUITE,
    ...clock.finish(),
    machine: { ...machine, opensslCli: opensslVersion },
    method: {
      unit: 'GB/s = 10^9 bytes per second of plaintext or uncompressed data, one thread',
      blockSizesBytes: BLOCK_SIZES,
      ...DEFAULT_THROUGHPUT,
      aadBytes: AAD_BYTES,
      openssl: opensslVersion === null ? null : { ciphers: OPENSSL_CIPHERS, seconds: OPENSSL_SECONDS },
    },
    plugins: set.plugins.map((p) => ({ name: p.manifest.name, module: repoPath(p.module) })),
    skipped,
    results: measurements,
  }
  publishResults(SUITE, clock.startedAt, report, renderSection)
}

interface PrimitivesReport extends RunConditions {
  suite: string
  machine: MachineInfo & { opensslCli: string | null }
  method: typeof DEFAULT_THROUGHPUT & {
    unit: string
    blockSizesBytes: readonly number[]
    aadBytes: number
    openssl: { ciphers: string[]; seconds: number } | null
  }
  plugins: { name: string; module: string }[]
  skipped: { kind: string; name: string; plugin: string; reason: string }[]
  results: Measurement[]
}

// The RESULTS.md section, also printed to stdout: the machine, the method, the table, and what
// the reader needs to read the table right.
function renderSection(report: PrimitivesReport, jsonFile: string): string {
  const { machine, method, results } = report
  const spreads = results.flatMap((m) => (m.throughput ? [{ m, spread: m.throughput.spreadPercent }] : []))
  spreads.sort((a, b) => a.spread - b.spread)
  const median = spreads.length ? spreads[Math.floor(spreads.length / 2)].spread : 0
  const worst = spreads.at(-1)
  return [
    `## ${SUITE}`,
    '',
    `Measured ${report.date} by \`npm run bench -- ${SUITE}\` in ${Math.round(report.durationSeconds)} s; data: \`${jsonFile}\`.`,
    '',
    machineLine(machine),
    `- Node ${machine.node} (OpenSSL ${machine.nodeOpenssl}); openssl command: ${machine.opensslCli ?? 'not installed, so no reference rows'}`,
    loadLine(report),
    `- Plugins: ${report.plugins.map((p) => p.name).join(', ')}`,
    '',
    `GB/s is 10^9 bytes of plaintext or uncompressed data per second, on one thread. Each cell runs ` +
      `${method.warmupMs / 1000} s of warm-up, then ${method.samples} samples of ${method.sampleMs / 1000} s; ` +
      `the figure is all bytes over all measured time, nothing discarded. The samples within a cell spread by ` +
      `${median.toFixed(0)}% (median over cells; largest ${worst ? `${worst.spread.toFixed(0)}%, ${worst.m.name} ${worst.m.operation} ${worst.m.data} ${sizeLabel(worst.m.blockSizeBytes)}` : 'n/a'}).`,
    '',
    renderTable(results),
    '',
    `- seal: one record per block with a fresh nonce (a record counter) and ${method.aadBytes} bytes of AAD, each record in a new buffer as the Cipher contract returns it; open: the same record opened again and again.`,
    `- openssl speed (\`openssl speed -elapsed -mr -seconds ${OPENSSL_SECONDS} -bytes N -evp NAME\`) encrypts one long message in place: no per-record IV, AAD, tag or allocation, so it bounds what seal can reach.`,
    `- raw: compress() reported that the block would not shrink, so it travels uncompressed and there is nothing to decompress; the compress figure on random data is the cost of finding that out.`,
    `- ratio: uncompressed / compressed bytes. \`none\` never compresses: its figures are the cost of a call.`,
    ...report.skipped.map((s) => `- Not measured: ${s.kind} \`${s.name}\` (${s.plugin}) is unavailable here: ${s.reason}`),
    ...results.flatMap((m) => (m.note?.startsWith('error') ? [`- ${m.kind} ${m.name} ${sizeLabel(m.blockSizeBytes)}: ${m.note}`] : [])),
  ].join('\n')
}

function measureCipher(cipher: Cipher, entry: PluginEntry, inputs: Map<number, Buffer>): Measurement[] {
  const out: Measurement[] = []
  const key = cipher.createKey(crypto.randomBytes(cipher.keyLengthBytes))
  const aad = crypto.randomBytes(AAD_BYTES)
  let counter = 0
  // escp's nonce is an implicit record counter (see the Cipher contract); each record gets its own buffer.
  const nextNonce = () => {
    const nonce = Buffer.alloc(cipher.nonceLengthBytes)
    nonce.writeUInt32BE(counter++, cipher.nonceLengthBytes - 4)
    return nonce
  }
  for (const [size, plain] of inputs) {
    const base = { kind: 'cipher', name: cipher.name, plugin: entry.plugin, data: 'random', blockSizeBytes: size } as const
    const nonce = nextNonce()
    const sealed = cipher.seal(key, nonce, aad, plain)
    if (!Buffer.from(cipher.open(key, nonce, aad, sealed.ciphertext, sealed.tag)).equals(plain)) {
      throw new Error(`cipher '${cipher.name}' does not round-trip ${size} bytes; not measuring a broken cipher`)
    }
    out.push(throughputOf({ ...base, operation: 'seal' }, () => cipher.seal(key, nextNonce(), aad, plain), size))
    out.push(throughputOf({ ...base, operation: 'open' }, () => cipher.open(key, nonce, aad, sealed.ciphertext, sealed.tag), size))
  }
  return out
}

async function measureOpenssl(name: string): Promise<Measurement[]> {
  const out: Measurement[] = []
  for (const size of BLOCK_SIZES) {
    const base = { kind: 'openssl', name, plugin: 'openssl', operation: 'encrypt', data: 'openssl buffer', blockSizeBytes: size } as const
    try {
      const r = await opensslSpeed(name, size, OPENSSL_SECONDS)
      out.push({ ...base, gbPerSecond: r.gbPerSecond, command: r.command })
    } catch (err) {
      // A reference that cannot run is reported, not fatal: escp's own figures still stand.
      out.push({ ...base, gbPerSecond: null, note: `error: ${(err as Error).message}` })
    }
  }
  return out
}

function measureCompressor(comp: Compressor, entry: PluginEntry, level: number, data: Data, inputs: Map<number, Buffer>): Measurement[] {
  const out: Measurement[] = []
  const defaultLevel = level === comp.defaultLevel
  for (const [size, src] of inputs) {
    const base = { kind: 'compressor', name: comp.name, plugin: entry.plugin, level, defaultLevel, data, blockSizeBytes: size } as const
    const dst = Buffer.allocUnsafe(size)
    const restored = Buffer.allocUnsafe(size)
    const compressedBytes = comp.compress(src, dst, level)
    if (compressedBytes !== null) {
      const n = comp.decompress(dst.subarray(0, compressedBytes), restored)
      if (n !== size || !restored.equals(src)) {
        throw new Error(`compressor '${comp.name}' level ${level} does not round-trip ${size} bytes of ${data} data; not measuring a broken compressor`)
      }
    }
    const ratio = compressedBytes === null ? 1 : size / compressedBytes
    out.push({ ...throughputOf({ ...base, operation: 'compress' }, () => comp.compress(src, dst, level), size), compressedBytes, ratio })
    if (compressedBytes === null) {
      out.push({ ...base, operation: 'decompress', gbPerSecond: null, note: 'raw' })
    } else {
      const packed = Buffer.from(dst.subarray(0, compressedBytes))
      out.push(throughputOf({ ...base, operation: 'decompress' }, () => comp.decompress(packed, restored), size))
    }
  }
  return out
}

function measureChecksum(sum: Checksum, entry: PluginEntry, inputs: Map<number, Buffer>): Measurement[] {
  return [...inputs].map(([size, block]) => {
    const digest = sum.block(block)
    if (digest.byteLength !== sum.digestLengthBytes) {
      throw new Error(`checksum '${sum.name}' returned ${digest.byteLength} bytes, not its digestLengthBytes (${sum.digestLengthBytes})`)
    }
    const base = { kind: 'checksum', name: sum.name, plugin: entry.plugin, operation: 'block', data: 'random', blockSizeBytes: size } as const
    return throughputOf(base, () => sum.block(block), size)
  })
}

function throughputOf(base: Omit<Measurement, 'gbPerSecond'>, op: () => unknown, size: number): Measurement {
  try {
    const { gbPerSecond, ...throughput } = measureThroughput(op, size)
    return { ...base, gbPerSecond, throughput }
  } catch (err) {
    throw new Error(`${base.kind} '${base.name}' ${base.operation} of ${sizeLabel(size)} failed: ${(err as Error).message}`, { cause: err })
  }
}

// One row per (primitive, operation, data), one column per block size.
function renderTable(measurements: readonly Measurement[]): string {
  const rows = new Map<string, { label: string[]; bySize: Map<number, Measurement> }>()
  const multiLevel = new Set(measurements.filter((m) => m.kind === 'compressor' && !m.defaultLevel).map((m) => m.name))
  for (const m of measurements) {
    const key = [m.kind, m.plugin, m.name, m.level, m.operation, m.data].join('\u0000')
    let row = rows.get(key)
    if (!row) {
      let name = m.plugin === CORE_PLUGIN || m.kind === 'openssl' ? m.name : `${m.name} (${m.plugin})`
      if (multiLevel.has(m.name) && m.level !== undefined) name += ` level ${m.level}${m.defaultLevel ? ' (default)' : ''}`
      const kind = m.kind === 'openssl' ? 'openssl speed' : m.kind
      row = { label: [kind, name, m.operation, m.data], bySize: new Map() }
      rows.set(key, row)
    }
    row.bySize.set(m.blockSizeBytes, m)
  }
  const cell = (m: Measurement | undefined) => (m === undefined ? '' : m.gbPerSecond === null ? (m.note === 'raw' ? 'raw' : 'error') : formatRate(m.gbPerSecond))
  const ratio = (m: Measurement | undefined) => (m?.ratio === undefined ? '' : m.compressedBytes === null ? 'raw' : `${m.ratio.toFixed(2)}×`)
  return markdownTable(
    [
      { header: 'kind' },
      { header: 'name' },
      { header: 'operation' },
      { header: 'data' },
      ...BLOCK_SIZES.map((n) => ({ header: `${sizeLabel(n)} GB/s`, align: 'right' as const })),
      { header: `ratio (${BLOCK_SIZES.map(sizeLabel).join(' / ')})`, align: 'right' },
    ],
    [...rows.values()].map((r) => {
      const cells = BLOCK_SIZES.map((n) => r.bySize.get(n))
      const ratios = cells.map(ratio)
      return [...r.label, ...cells.map(cell), ratios.some((x) => x) ? ratios.join(' / ') : '']
    }),
  )
}

function sizeLabel(bytes: number): string {
  return bytes >= 1 << 20 ? `${bytes / (1 << 20)} MiB` : `${bytes / 1024} KiB`
}

function progress(line: string): void {
  process.stderr.write(`${line}\n`)
}
