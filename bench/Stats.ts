/** Small helpers shared by the benchmarks: percentiles, a table, peak RSS. */
import { Effect } from "effect"

/** Nearest-rank percentile of samples in milliseconds, rounded to 0.01. */
export const percentile = (samples: ReadonlyArray<number>, p: number): number => {
  if (samples.length === 0) return Number.NaN
  const sorted = [...samples].sort((a, b) => a - b)
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return Math.round(sorted[rank]! * 100) / 100
}

const cell = (value: unknown) =>
  typeof value === "number" ? (Number.isInteger(value) || value >= 100 ? Math.round(value).toString() : value.toFixed(2)) : String(value)

export const table = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<unknown>>): string => {
  const cells = [header, ...rows.map((row) => row.map(cell))]
  const widths = header.map((_, column) => Math.max(...cells.map((row) => (row[column] ?? "").length)))
  return cells.map((row) => row.map((value, column) => (value ?? "").padStart(widths[column]!)).join("  ")).join("\n")
}

/**
 * Samples the process's resident set every 100 ms for as long as the scope
 * lives: the peak overall, and the peak since the last `startPhase()`.
 */
export const RssSampler = Effect.acquireRelease(
  Effect.sync(() => {
    let peak = process.memoryUsage().rss
    let phasePeak = peak
    const timer = setInterval(() => {
      const rss = process.memoryUsage().rss
      peak = Math.max(peak, rss)
      phasePeak = Math.max(phasePeak, rss)
    }, 100)
    const toMb = (bytes: number) => bytes / 1024 / 1024
    return {
      timer,
      peakMb: () => toMb(Math.max(peak, process.memoryUsage().rss)),
      startPhase: () => void (phasePeak = process.memoryUsage().rss),
      phasePeakMb: () => toMb(Math.max(phasePeak, process.memoryUsage().rss))
    }
  }),
  ({ timer }) => Effect.sync(() => clearInterval(timer))
)

/**
 * A latency histogram of fixed size (6,144 counters), for runs too long to
 * keep every sample: a bench that holds one number per message grows with the
 * run and hides the memory it is measuring. Buckets are exact to 1 µs below
 * 256 µs and then 1/256 of the value wide (0.4%), up to 2^31 µs (35 minutes).
 * `percentile` answers the nearest rank, as the function above does, with the
 * bucket's middle.
 */
export class Histogram {
  private static readonly SUB = 256
  private readonly counts = new Uint32Array(Histogram.SUB * 24)
  count = 0
  max = Number.NaN

  record(ms: number): void {
    const micros = Math.min(2 ** 31 - 1, Math.max(0, Math.round(ms * 1000)))
    this.counts[Histogram.indexOf(micros)]!++
    this.count++
    if (!(ms <= this.max)) this.max = ms
  }

  percentile(p: number): number {
    if (this.count === 0) return Number.NaN
    const rank = Math.min(this.count, Math.max(1, Math.ceil((p / 100) * this.count)))
    let seen = 0
    for (let index = 0; index < this.counts.length; index++) {
      seen += this.counts[index]!
      if (seen >= rank) return Math.round(Math.min(Histogram.middleOf(index) / 1000, this.max) * 100) / 100
    }
    return this.max
  }

  private static indexOf(micros: number): number {
    if (micros < Histogram.SUB) return micros
    const shift = 31 - Math.clz32(micros) - 8
    return Histogram.SUB * (shift + 1) + ((micros >>> shift) - Histogram.SUB)
  }

  private static middleOf(index: number): number {
    if (index < Histogram.SUB) return index
    const shift = Math.floor(index / Histogram.SUB) - 1
    const top = (index % Histogram.SUB) + Histogram.SUB
    return top * 2 ** shift + (2 ** shift - 1) / 2
  }
}
