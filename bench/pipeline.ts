/**
 * `npm run bench`: synthetic messages through the real pipeline (Redis,
 * RabbitMQ with a bound queue, PostgreSQL through PgBouncer), measured from
 * receipt to (a) cache and bus done and (b) committed, beside a naive
 * baseline (one awaited INSERT per message, no batching, cache or bus) in the
 * same run; then a recovery phase (bench/Recovery.ts): PostgreSQL, then
 * RabbitMQ, unreachable for `--outage` seconds under `--recovery-rate`
 * messages per second, and how fast the backlog drains. With
 * `--rss-outage SECONDS` alone, only the memory check: PostgreSQL unreachable
 * that long under `--recovery-rate`, on the daemon's default queue bounds,
 * with the peak RSS. Ends with one JSON line of the figures.
 *
 *   npm run bench -- --messages 50000 --rates 1000,5000 --outage 30 --recovery-rate 1000
 *   npm run bench -- --rss-outage 600 --recovery-rate 1000
 */
import { PgClient } from "@effect/sql-pg"
import { Effect, Fiber, Layer, PubSub, Redacted } from "effect"
import { Reactivity } from "effect/reactivity"
import { parseArgs } from "node:util"
import { eventKey, type MessageEvent } from "../src/domain/Message.ts"
import type { IngestProgress } from "../src/programs/IngestProgress.ts"
import { Ingestion } from "../src/programs/Ingestion.ts"
import { makeTestDatabase } from "../test/support/Database.ts"
import { created, freshChannelId, makeMessage } from "../test/support/TestEvents.ts"
import { makeTestConsumer, testIngestion, uniqueName } from "../test/support/TestGateway.ts"
import { recoveryPhase, rssThroughOutage } from "./Recovery.ts"
import { percentile, RssSampler, table } from "./Stats.ts"

const { values: args } = parseArgs({
  options: {
    messages: { type: "string", default: "50000" },
    rates: { type: "string", default: "1000,5000" },
    seconds: { type: "string", default: "10" },
    baseline: { type: "string", default: "3000" },
    outage: { type: "string", default: "30" },
    "recovery-rate": { type: "string", default: "1000" },
    "rss-outage": { type: "string", default: "0" }
  }
})
const rssOutageSeconds = Number(args["rss-outage"])
const outageSeconds = Number(args.outage)
const recoveryRate = Number(args["recovery-rate"])
const totalMessages = Number(args.messages)
const rates = args.rates.split(",").map(Number)
const secondsPerRate = Number(args.seconds)
const baselineMessages = Number(args.baseline)

interface Timings {
  readonly hotPathMs: Array<number>
  readonly committedMs: Array<number>
}

/**
 * Offers `count` events made on the fly (so the harness holds no backlog of its
 * own) at `rate` per second, or as fast as accepted when undefined, measuring
 * each from its offer to its cache-and-bus completion and to its commit.
 */
const drive = (count: number, rate: number | undefined) =>
  Effect.gen(function*() {
    const ingestion = yield* Ingestion
    const subscription = yield* ingestion.progress
    const channelId = freshChannelId()
    // Offer time and how many of the two completions are still to come, per key.
    const pending = new Map<string, { readonly offeredAt: number; left: number }>()
    const timings: Timings = { hotPathMs: [], committedMs: [] }
    let settled = 0
    const record = (key: string, samples: Array<number>, now: number) => {
      const entry = pending.get(key)
      if (entry === undefined) return
      samples.push(now - entry.offeredAt)
      if (--entry.left === 0) {
        pending.delete(key)
        settled++
      }
    }
    const collector = yield* Effect.gen(function*() {
      while (settled < count) {
        const batch = yield* PubSub.takeAll(subscription)
        const now = performance.now()
        for (const progress of batch as ReadonlyArray<IngestProgress>) {
          if (progress._tag === "HotPathDone") record(eventKey(progress.event), timings.hotPathMs, now)
          else for (const event of progress.events) record(eventKey(event), timings.committedMs, now)
        }
      }
    }).pipe(Effect.forkChild)

    const cpuBefore = process.cpuUsage()
    const started = performance.now()
    for (let index = 0; index < count; index++) {
      if (rate !== undefined) {
        const wait = started + (index / rate) * 1000 - performance.now()
        if (wait > 10) yield* Effect.sleep(Math.floor(wait))
      }
      const event = created(makeMessage(channelId, index + 1))
      pending.set(eventKey(event), { offeredAt: performance.now(), left: 2 })
      yield* ingestion.ingest(event)
    }
    yield* Fiber.join(collector)
    const elapsedSeconds = (performance.now() - started) / 1000
    const cpu = process.cpuUsage(cpuBefore)
    return { timings, throughput: count / elapsedSeconds, cpuMicrosPerEvent: (cpu.user + cpu.system) / count }
  }).pipe(Effect.scoped) // the progress subscription ends with the phase

const summarize = (samples: ReadonlyArray<number>) => ({
  p50: percentile(samples, 50),
  p95: percentile(samples, 95),
  p99: percentile(samples, 99)
})

const messagesFor = (count: number) => {
  const channelId = freshChannelId()
  return Array.from({ length: count }, (_, index) => created(makeMessage(channelId, index + 1)))
}

/** One INSERT per message, each awaited: what a gateway without batching does. */
const baseline = (url: Redacted.Redacted<string>, events: ReadonlyArray<MessageEvent>) =>
  Effect.gen(function*() {
    const sql = yield* PgClient.makeClient({ url, prepare: false })
    const latencies: Array<number> = []
    const started = performance.now()
    for (const event of events) {
      if (event._tag !== "MessageCreated") continue
      const message = event.message
      const begin = performance.now()
      yield* sql`INSERT INTO messages (channel_id, message_id, version, date, text, raw, received_at)
        VALUES (${message.channelId}, ${message.messageId}, 0, to_timestamp(${message.date}), ${message.text},
          ${JSON.stringify(message.raw)}::jsonb, now())
        ON CONFLICT DO NOTHING`
      latencies.push(performance.now() - begin)
    }
    return { throughput: events.length / ((performance.now() - started) / 1000), latency: summarize(latencies) }
  }).pipe(Effect.scoped, Effect.provide(Reactivity.layer))

const main = Effect.gen(function*() {
  const rss = yield* RssSampler
  const database = yield* makeTestDatabase("bench_pipeline")
  const exchange = uniqueName("bench.messages")
  const consumer = yield* makeTestConsumer(exchange, { consume: false })
  const gateway = testIngestion({
    databaseUrl: Redacted.value(database.url),
    exchange,
    keyPrefix: `${uniqueName("tgbench")}:`,
    ingest: { batchSize: 500, flushInterval: "10 millis", queueCapacity: 20_000, writers: 2, tierTimeout: "2 seconds" }
  })

  const results = yield* Effect.gen(function*() {
    yield* drive(2_000, undefined) // warm-up: connections, JIT
    rss.startPhase()
    const sustained = yield* drive(totalMessages, undefined)
    const sustainedRssMb = rss.phasePeakMb()
    const paced: Array<{
      rate: number
      throughput: number
      hotPath: ReturnType<typeof summarize>
      committed: ReturnType<typeof summarize>
      peakRssMb: number
    }> = []
    for (const rate of rates) {
      rss.startPhase()
      const run = yield* drive(rate * secondsPerRate, rate)
      paced.push({
        rate,
        throughput: run.throughput,
        hotPath: summarize(run.timings.hotPathMs),
        committed: summarize(run.timings.committedMs),
        peakRssMb: Math.round(rss.phasePeakMb())
      })
    }
    return {
      sustained: {
        peakRssMb: Math.round(sustainedRssMb),
        throughput: sustained.throughput,
        cpuMicrosPerEvent: sustained.cpuMicrosPerEvent,
        hotPath: summarize(sustained.timings.hotPathMs),
        committed: summarize(sustained.timings.committedMs)
      },
      paced
    }
  }).pipe(Effect.provide(Layer.fresh(gateway)))

  const peakRssMb = rss.peakMb()
  const onQueue = yield* consumer.queued
  const naive = yield* baseline(database.url, messagesFor(baselineMessages))
  const recovery = outageSeconds > 0 ? yield* recoveryPhase({ rate: recoveryRate, outageSeconds }) : []

  console.log(`\nPipeline: ${totalMessages} messages as fast as accepted, then ${rates.join(" and ")} msg/s for ${secondsPerRate} s each`)
  console.log(table(
    ["run", "msg/s", "hot p50", "hot p95", "hot p99", "commit p50", "commit p95", "commit p99", "peak RSS MB"],
    [
      [
        "max",
        results.sustained.throughput,
        ...Object.values(results.sustained.hotPath),
        ...Object.values(results.sustained.committed),
        results.sustained.peakRssMb
      ],
      ...results.paced.map((run) => [
        `${run.rate}/s`,
        run.throughput,
        ...Object.values(run.hotPath),
        ...Object.values(run.committed),
        run.peakRssMb
      ]),
      ["naive INSERT", naive.throughput, "-", "-", "-", ...Object.values(naive.latency), "-"]
    ]
  ))
  console.log(`latencies in ms from offer; peak RSS over the whole run ${peakRssMb.toFixed(0)} MB (process holds the harness too); messages on the bound queue: ${onQueue}`)
  console.log(`gateway process CPU per event at full speed: ${results.sustained.cpuMicrosPerEvent.toFixed(0)} µs`)
  console.log(`batched pipeline vs naive INSERT: ${(results.sustained.throughput / naive.throughput).toFixed(1)}x the throughput`)
  if (recovery.length > 0) {
    console.log(`\nRecovery: each tier unreachable for ${outageSeconds} s under ${recoveryRate} msg/s, then back`)
    console.log(table(
      ["tier", "backlog", "drain msg/s", "caught up after s"],
      recovery.map((run) => [run.tier, run.backlog, run.drainMsgPerSec, run.catchUpSeconds])
    ))
    console.log("postgres: caught up = ingest_oldest_uncommitted_seconds under 1 s; rabbitmq: bus relay published every committed event")
  }
  console.log(JSON.stringify({
    bench: "pipeline",
    messages: totalMessages,
    sustainedMsgPerSec: Math.round(results.sustained.throughput),
    sustainedHotPathMs: results.sustained.hotPath,
    sustainedCommittedMs: results.sustained.committed,
    sustainedPeakRssMb: results.sustained.peakRssMb,
    cpuMicrosPerEvent: Math.round(results.sustained.cpuMicrosPerEvent),
    paced: results.paced.map((run) => ({ ...run, throughput: Math.round(run.throughput) })),
    peakRssMb: Math.round(peakRssMb),
    baseline: { msgPerSec: Math.round(naive.throughput), latencyMs: naive.latency },
    ratio: Number((results.sustained.throughput / naive.throughput).toFixed(1)),
    recovery: recovery.map((run) => ({
      ...run,
      drainMsgPerSec: Math.round(run.drainMsgPerSec),
      catchUpSeconds: Number(run.catchUpSeconds.toFixed(2))
    }))
  }))
})

/** `--rss-outage`: only the long PostgreSQL outage, with the peak RSS. */
const rssOnly = Effect.gen(function*() {
  const run = yield* rssThroughOutage({ rate: recoveryRate, outageSeconds: rssOutageSeconds })
  console.log(`\nPostgreSQL unreachable for ${run.outageSeconds} s under ${run.rate} msg/s, default ingest bounds`)
  console.log(table(
    ["RSS before MB", "peak RSS outage MB", "backlog at heal", "peak RSS drain MB", "caught up after s"],
    [[run.rssBeforeMb, run.peakRssOutageMb, run.backlog, run.peakRssDrainMb, run.catchUpSeconds]]
  ))
  console.log(JSON.stringify({
    bench: "rss-outage",
    ...run,
    rssBeforeMb: Math.round(run.rssBeforeMb),
    peakRssOutageMb: Math.round(run.peakRssOutageMb),
    peakRssDrainMb: Math.round(run.peakRssDrainMb),
    catchUpSeconds: Number(run.catchUpSeconds.toFixed(2))
  }))
})

Effect.runPromise((rssOutageSeconds > 0 ? rssOnly : main).pipe(Effect.scoped)).catch((error) => {
  console.error(error)
  process.exit(1)
})
