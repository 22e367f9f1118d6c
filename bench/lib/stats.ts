// Summaries of a suite's repeated runs.

/** The middle value (the mean of the two middle ones for an even count), or null for no values. */
export function median(xs: readonly number[]): number | null {
  if (xs.length === 0) return null
  const s = [...xs].sort((a, b) => a - b)
  const m = Math.floor(s.length / 2)
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}

/** A row's wall-time figures over its runs. */
export interface TimingStats {
  runsOk: number
  runs: number
  medianSeconds: number | null
  minSeconds: number | null
  maxSeconds: number | null
  /** `bytes` over the median time, in 10⁶ bytes per second. */
  mbPerSecond: number | null
}

/** Timing figures from the wall times of the runs that succeeded, out of `runs`, each moving `bytes`. */
export function timingStats(okSeconds: readonly number[], runs: number, bytes: number): TimingStats {
  const medianSeconds = median(okSeconds)
  return {
    runsOk: okSeconds.length,
    runs,
    medianSeconds,
    minSeconds: okSeconds.length ? Math.min(...okSeconds) : null,
    maxSeconds: okSeconds.length ? Math.max(...okSeconds) : null,
    // GNU time counts in hundredths: a tiny copy can take "0.00 s", and has no rate.
    mbPerSecond: medianSeconds === null || medianSeconds <= 0 ? null : bytes / medianSeconds / 1e6,
  }
}
