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
