// The progress line on stderr, drawn only on a terminal and never more than 10 times a second,
// and the one-line summary at the end.
import type { TransferProgress, TransferSummary } from '@escp/core'
import { formatBytes, formatRate } from './units'

export class ProgressBar {
  private lastDrawMs = 0
  private drawn = false

  constructor(
    private readonly out: NodeJS.WriteStream,
    private readonly bits: boolean,
  ) {}

  update(p: TransferProgress): void {
    const now = Date.now()
    if (now - this.lastDrawMs < 100) return
    this.lastDrawMs = now
    const rate = p.elapsedMs > 0 ? (p.bytesDone / p.elapsedMs) * 1000 : 0
    const pct = p.bytesTotal > 0 ? Math.min(100, Math.floor((p.bytesDone / p.bytesTotal) * 100)) : 0
    const eta = p.enumerationDone && rate > 0 ? formatDuration(((p.bytesTotal - p.bytesDone) / rate) * 1000) : '--:--'
    const width = Math.max(10, Math.min(30, (this.out.columns ?? 80) - 60))
    const filled = Math.round((pct / 100) * width)
    const bar = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`
    const line = `${bar} ${String(pct).padStart(3)}% ${formatBytes(p.bytesDone)}/${formatBytes(p.bytesTotal)}${p.enumerationDone ? '' : '+'} ${formatRate(rate, this.bits)} ETA ${eta} files ${p.filesDone}/${p.filesTotal}`
    this.out.write(`\r${line}\x1b[K`)
    this.drawn = true
  }

  finish(): void {
    if (this.drawn) this.out.write('\r\x1b[K')
  }
}

export function summaryLine(s: TransferSummary, bits: boolean): string {
  const seconds = s.elapsedMs / 1000
  const rate = seconds > 0 ? s.bytes / seconds : 0
  const ratio = s.compressor !== 'none' && s.wireBytes > 0 ? `, ${(s.bytes / s.wireBytes).toFixed(2)}:1 compressed` : ''
  const failed = s.failures.length > 0 ? `, ${s.failures.length} failed` : ''
  // Holes of sparse files are not sent: the rate is of the bytes that were.
  const holes = s.holeBytes > 0 ? ` (+${formatBytes(s.holeBytes)} of holes, not sent)` : ''
  return `${s.entriesOk}/${s.entries} entries, ${formatBytes(s.bytes)}${holes} in ${seconds.toFixed(2)} s (${formatRate(rate, bits)}), ${s.streams} stream${s.streams === 1 ? '' : 's'}, ${s.cipher}, checksum ${s.checksum}${ratio}${failed}`
}

function formatDuration(ms: number): string {
  const t = Math.round(ms / 1000)
  const h = Math.floor(t / 3600)
  const m = Math.floor((t % 3600) / 60)
  const sec = t % 60
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${String(sec).padStart(2, '0')}` : `${m}:${String(sec).padStart(2, '0')}`
}
