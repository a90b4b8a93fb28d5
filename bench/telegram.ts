/**
 * `npm run bench:telegram`: the update engine against the simulator, the
 * whole gateway in-process over the real tiers. Measures
 * - messages recovered per second through getChannelDifference (a backlog
 *   below the too-long threshold) and through history (a too-long gap);
 * - time from start to every channel fresh with 200 backlogged channels;
 * - freshness with pushes off (the telegram_freshness_seconds gauge, sampled);
 * - the idle getChannelDifference rate for 10, 100 and 1,000 channels.
 * Ends with one JSON line of the figures.
 *
 *   npm run bench:telegram -- --backlog 20000
 */
import { Effect, Metric } from "effect"
import { parseArgs } from "node:util"
import * as Metrics from "../src/services/Metrics.ts"
import { type ChannelRef, TelegramSimulator } from "../src/simulator/index.ts"
import { query } from "../test/support/Database.ts"
import { runGateway } from "../test/telegram/EngineHarness.ts"
import { makeSetup, type SourceSetup } from "../test/telegram/Harness.ts"
import { percentile, table } from "./Stats.ts"

const { values: args } = parseArgs({
  options: {
    backlog: { type: "string", default: "20000" },
    channels: { type: "string", default: "200" },
    perChannel: { type: "string", default: "50" },
    freshnessSeconds: { type: "string", default: "30" }
  }
})

const count = (setup: SourceSetup) =>
  query<{ count: number }>(setup.database, "SELECT count(*)::int AS count FROM messages").pipe(Effect.map((rows) => rows[0]?.count ?? 0))

const waitUntil = <E>(condition: Effect.Effect<boolean, E>) =>
  Effect.gen(function*() {
    while (!(yield* condition)) yield* Effect.sleep("100 millis")
  })

/** A first start that stores each channel's state, then a stop. */
const firstStart = (setup: SourceSetup, settings: Record<string, unknown>, channels: number) =>
  Effect.scoped(Effect.gen(function*() {
    yield* runGateway(setup, settings)
    yield* waitUntil(
      query<{ count: number }>(setup.database, "SELECT count(*)::int AS count FROM telegram_channel_state").pipe(
        Effect.map((rows) => rows[0]?.count === channels)
      )
    )
  }))

/** Messages per second recovered by a start after `backlog` posts, through difference or (too long) history. */
const recovery = (backlog: number, via: "difference" | "history") =>
  Effect.scoped(Effect.gen(function*() {
    const sim = yield* TelegramSimulator.start({ differenceTimeout: 1, differenceTooLongAfter: via === "history" ? 1000 : 1_000_000_000 })
    const channel = sim.world.addChannel({ username: "bench_recovery", title: "Bench", kind: "channel" })
    const setup = yield* makeSetup(sim)
    const settings = { channels: ["@bench_recovery"], stateFlushInterval: "500 millis" }
    yield* firstStart(setup, settings, 1)
    for (let i = 1; i <= backlog; i++) sim.world.post(channel, { text: `backlog ${i} ${"x".repeat(80)}` })
    const started = Date.now()
    yield* runGateway(setup, settings)
    yield* waitUntil(count(setup).pipe(Effect.map((stored) => stored >= backlog)))
    const seconds = (Date.now() - started) / 1000
    return { via, messages: backlog, seconds, perSecond: Math.round(backlog / seconds) }
  }))

/** Time from start until every one of `channels` backlogged channels is committed up to its pts. */
const manyBacklogged = (channels: number, perChannel: number) =>
  Effect.scoped(Effect.gen(function*() {
    const sim = yield* TelegramSimulator.start({ differenceTimeout: 1 })
    const refs: Array<ChannelRef> = Array.from({ length: channels }, (_, i) =>
      sim.world.addChannel({ username: `bench_many_${String(i).padStart(4, "0")}`, title: `Bench ${i}`, kind: "channel" }))
    const setup = yield* makeSetup(sim)
    const settings = { channels: refs.map((ref) => `@${ref.username}`), stateFlushInterval: "200 millis" }
    yield* firstStart(setup, settings, channels)
    for (const ref of refs) for (let i = 1; i <= perChannel; i++) sim.world.post(ref, { text: `backlog ${i}` })
    const target = new Map(refs.map((ref) => [String(ref.id), sim.world.channel(ref).pts]))
    const started = Date.now()
    yield* runGateway(setup, settings)
    yield* waitUntil(
      query<{ channel_id: string; pts: number }>(setup.database, "SELECT channel_id::text AS channel_id, pts FROM telegram_channel_state").pipe(
        Effect.map((rows) => rows.filter((row) => row.pts >= (target.get(row.channel_id) ?? Infinity)).length === channels)
      )
    )
    return { channels, messages: channels * perChannel, secondsToAllFresh: (Date.now() - started) / 1000 }
  }))

/** The freshness gauge sampled every 250 ms while pushes are off and a post lands every 200 ms. */
const freshnessWithoutPushes = (pollInterval: string, seconds: number) =>
  Effect.scoped(Effect.gen(function*() {
    const sim = yield* TelegramSimulator.start({ differenceTimeout: 1 })
    const refs = Array.from({ length: 10 }, (_, i) => sim.world.addChannel({ username: `bench_fresh_${i}`, title: `Fresh ${i}`, kind: "channel" }))
    const setup = yield* makeSetup(sim)
    yield* runGateway(setup, { channels: refs.map((ref) => `@${ref.username}`), pollInterval })
    yield* waitUntil(Effect.sync(() => sim.callCount("updates.GetChannelDifference") >= 10))
    yield* Effect.sleep("3 seconds")
    sim.faults.pushFaults({ dropRatio: 1 })
    const samples: Array<number> = []
    const end = Date.now() + seconds * 1000
    let i = 0
    while (Date.now() < end) {
      sim.world.post(refs[i++ % refs.length]!, { text: `unpushed ${i}` })
      yield* Effect.sleep("250 millis")
      for (const ref of refs) {
        samples.push((yield* Metric.value(Metrics.telegramFreshness.pipe(Metric.withAttributes({ channel: String(ref.id) })))).value)
      }
    }
    return { pollInterval, p50: percentile(samples, 50), p99: percentile(samples, 99), max: Math.max(...samples) }
  }))

/** getChannelDifference calls per second over 15 s once `channels` idle channels are running, with the defaults. */
const idleRate = (channels: number) =>
  Effect.scoped(Effect.gen(function*() {
    const sim = yield* TelegramSimulator.start({ differenceTimeout: 1 })
    const refs = Array.from({ length: channels }, (_, i) => sim.world.addChannel({ username: `bench_idle_${String(i).padStart(4, "0")}`, title: `Idle ${i}`, kind: "channel" }))
    const setup = yield* makeSetup(sim)
    yield* runGateway(setup, { channels: refs.map((ref) => `@${ref.username}`) })
    yield* waitUntil(
      query<{ count: number }>(setup.database, "SELECT count(*)::int AS count FROM telegram_channel_state").pipe(
        Effect.map((rows) => rows[0]?.count === channels)
      )
    )
    yield* Effect.sleep("10 seconds")
    const before = sim.callCount("updates.GetChannelDifference")
    const started = Date.now()
    yield* Effect.sleep("15 seconds")
    const perSecond = (sim.callCount("updates.GetChannelDifference") - before) / ((Date.now() - started) / 1000)
    return { channels, requestsPerSecond: Math.round(perSecond * 10) / 10 }
  }))

const main = Effect.gen(function*() {
  const backlog = Number(args.backlog)
  const difference = yield* recovery(backlog, "difference")
  const history = yield* recovery(backlog, "history")
  const many = yield* manyBacklogged(Number(args.channels), Number(args.perChannel))
  const freshDefault = yield* freshnessWithoutPushes("5 seconds", Number(args.freshnessSeconds))
  const freshFast = yield* freshnessWithoutPushes("1 second", Number(args.freshnessSeconds))
  const rates = []
  for (const channels of [10, 100, 1000]) rates.push(yield* idleRate(channels))

  console.log(table(["recovery via", "messages", "seconds", "messages/s"], [difference, history].map((r) => [r.via, r.messages, r.seconds.toFixed(1), r.perSecond])))
  console.log(table(["backlogged channels", "messages", "start to all fresh (s)"], [[many.channels, many.messages, many.secondsToAllFresh.toFixed(1)]]))
  console.log(table(["pushes off, pollInterval", "freshness p50 (s)", "p99 (s)", "max (s)"], [freshDefault, freshFast].map((f) => [f.pollInterval, f.p50.toFixed(2), f.p99.toFixed(2), f.max.toFixed(2)])))
  console.log(table(["idle channels", "getChannelDifference/s (defaults: pollInterval 5 s, maxPollRate 20)"], rates.map((r) => [r.channels, r.requestsPerSecond])))
  console.log(JSON.stringify({ difference, history, many, freshness: [freshDefault, freshFast], idleRates: rates }))
})

Effect.runPromise(main.pipe(Effect.scoped)).then(
  () => process.exit(0),
  (error) => {
    console.error(error)
    process.exit(1)
  }
)
