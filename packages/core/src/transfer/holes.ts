// Sparse files (protocol 1.1): which blocks of a file hold data, for the sender that skips the
// rest, and whether a FileDone's block count fits the hole bytes announced, for the receiver.
import type { Extent } from '../contracts/io-engine'

/** Block indices [start, end) that hold data. */
export interface BlockRun {
  start: number
  end: number
}

export interface DataBlocks {
  /** Runs of blocks to send, in ascending order, neither overlapping nor touching. */
  runs: BlockRun[]
  /** Bytes of the blocks not sent: every byte of them lies in a hole. */
  holeBytes: number
}

/** The blocks of a file of `sizeBytes` that hold any byte of `extents`; the others lie in holes. */
export function dataBlocks(extents: readonly Extent[], sizeBytes: number, blockSizeBytes: number): DataBlocks {
  const runs: BlockRun[] = []
  // Engines report extents in offset order; sorting keeps a careless one from losing data.
  for (const x of [...extents].sort((a, b) => a.offset - b.offset)) {
    const end = Math.min(x.offset + x.length, sizeBytes)
    if (x.length <= 0 || x.offset >= end) continue
    const run = { start: Math.floor(x.offset / blockSizeBytes), end: Math.ceil(end / blockSizeBytes) }
    const last = runs[runs.length - 1]
    if (last && run.start <= last.end) last.end = Math.max(last.end, run.end)
    else runs.push(run)
  }
  let dataBytes = 0
  for (const r of runs) dataBytes += Math.min(r.end * blockSizeBytes, sizeBytes) - r.start * blockSizeBytes
  return { runs, holeBytes: sizeBytes - dataBytes }
}

/**
 * Whether `blocks` Block records fit a file of `size` bytes of which the sender skipped
 * `sparseBytes` in whole blocks: all ceil(size / block) blocks when nothing was skipped;
 * otherwise at least one block fewer, the skipped ones adding up to exactly `sparseBytes`
 * (full blocks, plus the shorter last block when it is one of them).
 */
export function blocksFitHoles(size: bigint, sparseBytes: bigint, blocks: bigint, blockSizeBytes: number): boolean {
  const bs = BigInt(blockSizeBytes)
  const n = (size + bs - 1n) / bs
  if (sparseBytes === 0n) return blocks === n
  const skipped = n - blocks
  if (skipped < 1n || skipped > n) return false
  const lastLength = size - (n - 1n) * bs
  const lastSent = skipped <= n - 1n && sparseBytes === skipped * bs
  const lastSkipped = sparseBytes === (skipped - 1n) * bs + lastLength
  return lastSent || lastSkipped
}
