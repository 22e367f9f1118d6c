// One table format for the terminal and for RESULTS.md: a Markdown table with padded columns
// reads well in both, and the two cannot drift apart.

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

/** Three significant figures, never in exponent notation. */
export function formatRate(x: number): string {
  return x >= 100 ? Math.round(x).toString() : x.toPrecision(3)
}
