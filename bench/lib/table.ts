// One table format for the terminal and for RESULTS.md: a Markdown table with padded columns
// reads well in both, and the two cannot drift apart.
import type { TimingStats } from './stats'

export interface Column {
  header: string
  align?: 'left' | 'right'
}

export function markdownTable(columns: readonly Column[], rows: readonly (readonly string[])[]): string {
  const widths = columns.map((c, i) => Math.max(c.header.length, 3, ...rows.map((r) => (r[i] ?? '').length)))
  const line = (cells: readonly string[]) =>
    `| ${cells.map((cell, i) => (columns[i].align === 'right' ? cell.padStart(widths[i]) : cell.padEnd(widths[i]))).join(' | ')} |`
  const rule = `|${columns.map((c, i) => (c.align === 'right' ? `${'-'.repeat(widths[i] + 1)}:` : '-'.repeat(widths[i] + 2))).join('|')}|`
  return [line(columns.map((c) => c.header)), rule, ...rows.map((r) => line(columns.map((_, i) => r[i] ?? '')))].join('\n')
}

/** Two decimals, or nothing for no value. */
export function fixed(x: number | null): string {
  return x === null ? '' : x.toFixed(2)
}

/** The columns of a row's TimingStats, in the order timingCells() gives them. */
export const TIMING_COLUMNS: readonly Column[] = [
  { header: 'runs ok' },
  { header: 'median s', align: 'right' },
  { header: 'min s', align: 'right' },
  { header: 'max s', align: 'right' },
  { header: 'MB/s', align: 'right' },
]

/** A row's TimingStats as cells: runs ok, median, min and max seconds, MB/s. */
export function timingCells(s: TimingStats): string[] {
  return [`${s.runsOk}/${s.runs}`, fixed(s.medianSeconds), fixed(s.minSeconds), fixed(s.maxSeconds), s.mbPerSecond === null ? '' : Math.round(s.mbPerSecond).toString()]
}

/** Three significant figures, never in exponent notation. */
export function formatRate(x: number): string {
  return x >= 100 ? Math.round(x).toString() : x.toPrecision(3)
}

/** One process of a measured run, for profileTable(). */
export interface ProfileRow {
  /** Which measurement. */
  run: string
  /** Which process of it. */
  role: string
  wallSeconds: number | null
  profile: {
    mainThreadSeconds: number
    mainThreadSystemSeconds: number
    otherThreadsSeconds: number
    otherThreadsSystemSeconds: number
    threads: { main: boolean; seconds: number; systemSeconds: number }[]
  }
}

/** Where a run's CPU went, per process: its main thread, and its other threads (workers, libuv, V8). */
export function profileTable(rows: readonly ProfileRow[]): string {
  return markdownTable(
    [
      { header: 'run' },
      { header: 'process' },
      { header: 'main thread CPU s', align: 'right' },
      { header: 'of it system', align: 'right' },
      { header: 'main thread busy', align: 'right' },
      { header: 'other threads CPU s', align: 'right' },
      { header: 'of it system', align: 'right' },
      { header: 'busiest other threads, CPU s (system)' },
    ],
    rows.map(({ run, role, wallSeconds, profile: p }) => [
      run,
      role,
      p.mainThreadSeconds.toFixed(2),
      p.mainThreadSystemSeconds.toFixed(2),
      wallSeconds ? `${Math.round((p.mainThreadSeconds / wallSeconds) * 100)}%` : '',
      p.otherThreadsSeconds.toFixed(2),
      p.otherThreadsSystemSeconds.toFixed(2),
      p.threads
        .filter((t) => !t.main)
        .slice(0, 6)
        .map((t) => `${t.seconds.toFixed(2)} (${t.systemSeconds.toFixed(2)})`)
        .join(', '),
    ]),
  )
}
