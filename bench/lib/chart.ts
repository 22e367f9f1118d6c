// A chart of throughput for the README: bench/results/chart.svg, made from the newest JSON of
// the transfer, wan and protocol suites (nothing is measured). One panel per suite, each with
// its own linear MB/s axis (cp on a page cache and WAN copies differ by 200×, so one axis would
// hide the slow bars); in a panel, one group of bars per dataset or case, one bar per tool,
// each labelled with its median MB/s. Plain SVG text, written by hand: no dependency.
import fs from 'node:fs'
import path from 'node:path'
import { RESULTS_DIR, repoPath } from './results'
import type { MachineInfo } from './machine'

export const CHART_SVG = path.join(RESULTS_DIR, 'chart.svg')

/** One bar: a tool's median throughput in one case; null when it had no successful run. */
export interface ChartBar {
  tool: string
  mbPerSecond: number | null
  color: string
}

export interface ChartGroup {
  title: string
  bars: ChartBar[]
}

export interface ChartPanel {
  title: string
  note: string
  date: string
  machine: MachineInfo
  /** The JSON it was made from, relative to the repository. */
  source: string
  groups: ChartGroup[]
}

// ---- reading the newest results ----

/** The newest bench/results/<suite>-<timestamp>.json (the timestamps sort as text), or null. */
export function latestResultsFile(suite: string, dir = RESULTS_DIR): string | null {
  const pattern = new RegExp(`^${suite}-\\d{8}T\\d{6}Z\\.json$`)
  const files = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => pattern.test(f)).sort() : []
  return files.length ? path.join(dir, files[files.length - 1]) : null
}

interface StatsJson {
  tool: string
  mbPerSecond: number | null
}

interface SuiteJson {
  date: string
  machine: MachineInfo
}

interface TransferJson extends SuiteJson {
  cells: { id: string; title: string; dataset: { files: number; bytes: number }; stats: StatsJson[] }[]
}

interface WanJson extends SuiteJson {
  link: { rttMs: number; loss: number; rateBps: number; emulator: string }
  method: { bytes: number }
  congestionControls: { congestionControl: string; available: boolean; stats: StatsJson[] }[]
}

interface ProtocolJson extends SuiteJson {
  method?: { bytes?: number; gib?: number }
  rows: { kind: string; streams: number; label: string; gbPerSecond: number | null }[]
}

const COLORS: Record<string, string> = {
  cp: '#8c8c8c',
  scp: '#e6862e',
  'scp-default': '#f2b27a',
  rsync: '#3a9a48',
  iperf3: '#8e6bbf',
  escp: '#1f63b5',
  'escp -t 1': '#7fb0e6',
  'escp -t 4': '#3f84d1',
  'escp -t 8': '#1a4f91',
  SecureStream: '#7fb0e6',
}

function colorOf(tool: string): string {
  return COLORS[tool] ?? (tool.startsWith('escp') ? COLORS.escp : '#666666')
}

function readJson<T>(file: string): T {
  return JSON.parse(fs.readFileSync(file, 'utf8')) as T
}

function transferPanel(file: string): ChartPanel {
  const r = readJson<TransferJson>(file)
  return {
    title: 'Local copies (transfer suite)',
    note: 'scp and rsync through an sshd on 127.0.0.1; escp in loopback mode, defaults (4 streams, aes-128-gcm)',
    date: r.date,
    machine: r.machine,
    source: repoPath(file),
    groups: r.cells.map((c) => ({
      title: c.title.replace(/^(\d+)(\d{3}) /, '$1,$2 '),
      bars: c.stats.map((s) => ({ tool: s.tool, mbPerSecond: s.mbPerSecond, color: colorOf(s.tool) })),
    })),
  }
}

function wanPanel(file: string): ChartPanel {
  const r = readJson<WanJson>(file)
  const l = r.link
  return {
    title: 'Emulated WAN (wan suite)',
    note: `one ${Math.round(r.method.bytes / 2 ** 20)} MiB file pushed over ssh; ${l.rttMs} ms RTT, ${l.loss * 100}% loss, ${l.rateBps / 1e9} Gbit/s bottleneck`,
    date: r.date,
    machine: r.machine,
    source: repoPath(file),
    groups: r.congestionControls
      .filter((cc) => cc.available)
      .map((cc) => ({
        title: `TCP congestion control ${cc.congestionControl}`,
        bars: cc.stats.map((s) => ({ tool: s.tool, mbPerSecond: s.mbPerSecond, color: colorOf(s.tool) })),
      })),
  }
}

function protocolPanel(file: string): ChartPanel {
  const r = readJson<ProtocolJson>(file)
  const streams = (n: number) => `${n} stream${n === 1 ? '' : 's'}`
  const name = (kind: string) => (kind === 'iperf3' ? 'iperf3' : kind === 'secure-stream' ? 'SecureStream' : 'escp')
  return {
    title: 'Data plane without disks (protocol suite)',
    note: 'iperf3 is plain TCP; SecureStream: one thread seals and opens; escp: copy() with the dummy engine',
    date: r.date,
    machine: r.machine,
    source: repoPath(file),
    groups: [
      {
        title: 'loopback TCP, memory to memory',
        bars: r.rows.map((row) => ({
          tool: `${name(row.kind)}, ${streams(row.streams)}`,
          mbPerSecond: row.gbPerSecond === null ? null : row.gbPerSecond * 1000,
          color: colorOf(name(row.kind)),
        })),
      },
    ],
  }
}

/** The panels that have results, in the order they appear. */
export function chartPanels(dir = RESULTS_DIR): ChartPanel[] {
  const makers: [string, (file: string) => ChartPanel][] = [
    ['transfer', transferPanel],
    ['wan', wanPanel],
    ['protocol', protocolPanel],
  ]
  return makers.flatMap(([suite, make]) => {
    const file = latestResultsFile(suite, dir)
    return file ? [make(file)] : []
  })
}

// ---- drawing ----

const WIDTH = 800
const MARGIN = 20
/** Tool names are right-aligned to this x; bars start just after. */
const LABEL_RIGHT = 172
const BAR_LEFT = 180
/** Room right of the longest bar for its value label. */
const VALUE_ROOM = 78
const BAR_MAX = WIDTH - MARGIN - BAR_LEFT - VALUE_ROOM
const BAR_HEIGHT = 16
const BAR_PITCH = 21
const FONT = "-apple-system, 'Segoe UI', Helvetica, Arial, 'DejaVu Sans', sans-serif"

function esc(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')
}

function text(x: number, y: number, body: string, attrs = ''): string {
  return `<text x="${x}" y="${y}"${attrs ? ` ${attrs}` : ''}>${esc(body)}</text>`
}

/** A round axis end and step at or above `max`: steps of 1, 2 or 5 × 10^k, four to eight of them. */
function niceAxis(max: number): { top: number; step: number } {
  const raw = Math.max(max, 1) / 5
  const mag = 10 ** Math.floor(Math.log10(raw))
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) as number
  return { top: Math.ceil(max / step) * step, step }
}

function formatMb(x: number): string {
  return x >= 100 ? Math.round(x).toLocaleString('en-US') : x >= 10 ? x.toFixed(1) : x.toFixed(2)
}

function formatTick(v: number, step: number): string {
  return step >= 1 ? v.toLocaleString('en-US') : v.toFixed(Math.ceil(-Math.log10(step)))
}

function day(iso: string): string {
  return iso.slice(0, 10)
}

function machineText(m: MachineInfo): string {
  return `${m.cpuModel}${m.cpuId ? ` (${m.cpuId})` : ''}, ${m.nproc} cores, ${m.os}, Node ${m.node}`
}

/** The chart as SVG text; `panels` as chartPanels() returns them. */
export function renderChart(panels: readonly ChartPanel[]): string {
  const out: string[] = []
  let y = MARGIN
  const days = [...new Set(panels.map((p) => day(p.date)))].sort()
  const when = days.length === 0 ? 'no results yet' : days.length === 1 ? days[0] : `${days[0]} to ${days[days.length - 1]}`
  y += 20
  out.push(text(MARGIN, y, 'escp throughput, median MB/s (10⁶ bytes/s, higher is better)', 'font-size="19" font-weight="bold" fill="#111"'))
  y += 20
  out.push(text(MARGIN, y, `Measured ${when}; medians over each suite's runs; each panel has its own scale.`, 'font-size="13" fill="#333"'))
  const machines = [...new Set(panels.map((p) => machineText(p.machine)))]
  for (const m of machines) {
    y += 17
    out.push(text(MARGIN, y, m, 'font-size="12" fill="#555"'))
  }
  y += 12

  for (const panel of panels) {
    y += 26
    out.push(text(MARGIN, y, panel.title, 'font-size="15" font-weight="bold" fill="#111"'))
    out.push(text(WIDTH - MARGIN, y, day(panel.date), 'font-size="12" fill="#555" text-anchor="end"'))
    y += 16
    out.push(text(MARGIN, y, panel.note, 'font-size="12" fill="#555"'))
    const values = panel.groups.flatMap((g) => g.bars.map((b) => b.mbPerSecond ?? 0))
    const { top, step } = niceAxis(Math.max(...values, 1))
    const scale = (v: number) => (v / top) * BAR_MAX
    // Tick labels above the bars, grid lines through them.
    y += 20
    const gridTop = y + 5
    const rows = panel.groups.reduce((n, g) => n + 1 + g.bars.length, 0)
    const gridBottom = gridTop + rows * BAR_PITCH + (panel.groups.length - 1) * 8 + 4
    for (let v = 0; v <= top + step / 2; v += step) {
      const x = BAR_LEFT + scale(v)
      out.push(`<line x1="${x.toFixed(1)}" y1="${gridTop}" x2="${x.toFixed(1)}" y2="${gridBottom}" stroke="${v === 0 ? '#999' : '#e3e3e3'}" stroke-width="1"/>`)
      out.push(text(Number(x.toFixed(1)), y, formatTick(v, step), 'font-size="11" fill="#777" text-anchor="middle"'))
    }
    y = gridTop
    panel.groups.forEach((group, gi) => {
      if (gi > 0) y += 8
      y += BAR_PITCH
      out.push(text(BAR_LEFT + 6, y - 5, group.title, 'font-size="13" font-weight="bold" fill="#222"'))
      for (const bar of group.bars) {
        const barTop = y + (BAR_PITCH - BAR_HEIGHT) / 2
        const mid = barTop + BAR_HEIGHT / 2 + 4
        out.push(text(LABEL_RIGHT, mid, bar.tool, `font-size="12" fill="#222" text-anchor="end"${bar.tool.startsWith('escp') ? ' font-weight="bold"' : ''}`))
        if (bar.mbPerSecond === null) {
          out.push(text(BAR_LEFT + 6, mid, 'no successful run', 'font-size="12" fill="#b00020" font-style="italic"'))
        } else {
          const w = Math.max(1, scale(bar.mbPerSecond))
          out.push(`<rect x="${BAR_LEFT}" y="${barTop}" width="${w.toFixed(1)}" height="${BAR_HEIGHT}" fill="${bar.color}"><title>${esc(`${group.title}: ${bar.tool} ${formatMb(bar.mbPerSecond)} MB/s`)}</title></rect>`)
          out.push(text(Number((BAR_LEFT + w + 5).toFixed(1)), mid, `${formatMb(bar.mbPerSecond)} MB/s`, 'font-size="12" fill="#222"'))
        }
        y += BAR_PITCH
      }
    })
    y += 6
  }
  y += 24
  out.push(text(MARGIN, y, 'Drawn by npm run bench -- chart from the newest JSON in bench/results/; the tables are in bench/RESULTS.md.', 'font-size="11" fill="#777"'))
  y += 15
  out.push(text(MARGIN, y, `Data: ${panels.map((p) => path.basename(p.source)).join(', ') || 'none'}`, 'font-size="11" fill="#777"'))
  y += MARGIN
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${y}" viewBox="0 0 ${WIDTH} ${y}" font-family="${FONT}">`,
    `<rect width="${WIDTH}" height="${y}" fill="#ffffff"/>`,
    ...out,
    '</svg>',
    '',
  ].join('\n')
}

/** Rewrites bench/results/chart.svg from the newest results; returns what it did. */
export function writeChart(dir = RESULTS_DIR): { file: string; sources: string[] } {
  const panels = chartPanels(dir)
  const file = path.join(dir, path.basename(CHART_SVG))
  const tmp = `${file}.tmp`
  fs.writeFileSync(tmp, renderChart(panels))
  fs.renameSync(tmp, file)
  return { file: repoPath(file), sources: panels.map((p) => p.source) }
}

/** For the end of a suite: rewrites the chart, and says so; a failure here must not lose a run's figures. */
export function updateChart(): string {
  try {
    const { file, sources } = writeChart()
    return `wrote ${file} (from ${sources.map((s) => path.basename(s)).join(', ')})`
  } catch (err) {
    return `could not rewrite the chart (npm run bench -- chart retries): ${(err as Error).message}`
  }
}
