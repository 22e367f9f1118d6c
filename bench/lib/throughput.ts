// Throughput of a synchronous operation on a fixed-size block, measured on this thread.

export interface ThroughputOptions {
  /** Time spent running the operation before measuring: JIT, allocator and caches settle. */
  warmupMs: number
  /** The measurement is split into samples so their spread shows how noisy the machine was. */
  samples: number
  sampleMs: number
}

export const DEFAULT_THROUGHPUT: ThroughputOptions = { warmupMs: 200, samples: 5, sampleMs: 150 }

export interface Throughput {
  /** All bytes processed over all measured time, in 10^9 bytes per second. */
  gbPerSecond: number
  sampleGbPerSecond: number[]
  /** (max - min) / mean of the samples, in percent. */
  spreadPercent: number
  operations: number
  measuredSeconds: number
}

export function measureThroughput(op: () => unknown, bytesPerOp: number, options: ThroughputOptions = DEFAULT_THROUGHPUT): Throughput {
  const warm = runFor(op, 1, options.warmupMs)
  // Reading the clock costs more than some operations (the 'none' compressor), so the clock is
  // read once per batch sized from the warm-up to last about a millisecond.
  const batch = Math.max(1, Math.round(warm.operations / warm.seconds / 1000))
  const samples = Array.from({ length: options.samples }, () => runFor(op, batch, options.sampleMs))
  const operations = samples.reduce((n, s) => n + s.operations, 0)
  const measuredSeconds = samples.reduce((t, s) => t + s.seconds, 0)
  const rates = samples.map((s) => (s.operations * bytesPerOp) / s.seconds / 1e9)
  const gbPerSecond = (operations * bytesPerOp) / measuredSeconds / 1e9
  return {
    gbPerSecond,
    sampleGbPerSecond: rates,
    spreadPercent: ((Math.max(...rates) - Math.min(...rates)) / gbPerSecond) * 100,
    operations,
    measuredSeconds,
  }
}

function runFor(op: () => unknown, batch: number, ms: number): { operations: number; seconds: number } {
  const start = process.hrtime.bigint()
  const deadline = start + BigInt(Math.round(ms * 1e6))
  let operations = 0
  let now = start
  do {
    for (let i = 0; i < batch; i++) op()
    operations += batch
    now = process.hrtime.bigint()
  } while (now < deadline)
  return { operations, seconds: Number(now - start) / 1e9 }
}
