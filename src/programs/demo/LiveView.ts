/**
 * The demo's live view: what reached each tier, how fast, and how late,
 * from the ingestion program's progress notifications. Redrawn in place on a
 * terminal, one line per second otherwise (so it can be piped or logged).
 */
import { Clock, Effect, PubSub, Schedule } from "effect"
import { eventKind } from "../../domain/Message.ts"
import type { Ingestion } from "../Ingestion.ts"
import type { SignalCounts } from "./SignalChannel.ts"

export interface Tally {
  received: number
  readonly byKind: { new: number; edited: number; deleted: number }
  cached: number
  duplicates: number
  published: number
  committed: number
  readonly hotPathMs: Array<number>
  readonly commitMs: Array<number>
}

export const emptyTally = (): Tally => ({
  received: 0,
  byKind: { new: 0, edited: 0, deleted: 0 },
  cached: 0,
  duplicates: 0,
  published: 0,
  committed: 0,
  hotPathMs: [],
  commitMs: []
})

const percentile = (samples: ReadonlyArray<number>, p: number) => {
  if (samples.length === 0) return "-"
  const sorted = [...samples].sort((a, b) => a - b)
  return `${sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]} ms`
}

/** Counts every progress notification into `tally` for as long as it runs. */
export const collect = (ingestion: Ingestion["Service"], tally: Tally) =>
  Effect.gen(function*() {
    const subscription = yield* ingestion.progress
    while (true) {
      for (const progress of yield* PubSub.takeAll(subscription)) {
        if (progress._tag === "HotPathDone") {
          tally.received++
          tally.byKind[eventKind(progress.event)]++
          if (progress.verdict === "duplicate") tally.duplicates++
          else if (progress.cached) tally.cached++
          if (progress.published) tally.published++
          tally.hotPathMs.push(progress.at - progress.event.receivedAt)
        } else {
          tally.committed += progress.events.length
          for (const event of progress.events) tally.commitMs.push(progress.at - event.receivedAt)
        }
      }
    }
  }).pipe(Effect.scoped)

export const describe = (tally: Tally, posted: SignalCounts, seconds: number): ReadonlyArray<string> => [
  `telegram  posted ${posted.posted}, edited ${posted.edited}, deleted ${posted.deleted}  (${seconds.toFixed(0)} s)`,
  `gateway   received ${tally.received} (new ${tally.byKind.new}, edits ${tally.byKind.edited}, deletions ${tally.byKind.deleted}), ${(tally.received / Math.max(seconds, 1)).toFixed(1)}/s`,
  `redis     cached ${tally.cached}, duplicates skipped ${tally.duplicates}`,
  `rabbitmq  published ${tally.published}`,
  `postgres  committed ${tally.committed}`,
  `latency   cache+bus p50 ${percentile(tally.hotPathMs, 50)}, p99 ${percentile(tally.hotPathMs, 99)};  committed p50 ${percentile(tally.commitMs, 50)}, p99 ${percentile(tally.commitMs, 99)}`
]

/** Prints the view every second until interrupted. */
export const render = (tally: Tally, posted: SignalCounts, startedAt: number) => {
  const interactive = process.stdout.isTTY === true
  let drawn = 0
  return Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.sync(() => {
    const lines = describe(tally, posted, (now - startedAt) / 1000)
    if (interactive) {
      process.stdout.write((drawn > 0 ? `\x1b[${drawn}A` : "") + lines.map((line) => `\x1b[2K${line}\n`).join(""))
      drawn = lines.length
    } else {
      process.stdout.write(`${lines.join(" | ")}\n`)
    }
  })).pipe(Effect.repeat(Schedule.spaced("1 second")))
}
