/**
 * The pipeline bench's recovery phase: a tier made unreachable for
 * `outageSeconds` (a TCP proxy in front of it, cut and restored, so the
 * machine's shared services keep running) while events arrive at `rate`, then
 * healed. Reports how fast the backlog drains and how long until the gateway
 * is caught up: for PostgreSQL, until `ingest_oldest_uncommitted_seconds` is
 * back under 1 s; for RabbitMQ, until the bus relay has published every
 * committed event (`bus_unpublished_events` 0).
 *
 * `rssThroughOutage` is the memory bound's check: PostgreSQL unreachable for
 * a long time (ten minutes in docs/benchmarks.md) under a steady rate, on the
 * daemon's default queue bounds, sampling the process's RSS.
 */
import { Effect, Fiber, Layer, Metric, Redacted } from "effect"
import { Ingestion } from "../src/programs/Ingestion.ts"
import * as Metrics from "../src/services/Metrics.ts"
import { makeTestDatabase, urlVia } from "../test/support/Database.ts"
import { makeTcpProxy, type TcpProxy } from "../test/support/TcpProxy.ts"
import { created, freshChannelId, makeMessage } from "../test/support/TestEvents.ts"
import { makeTestConsumer, testIngestion, uniqueName } from "../test/support/TestGateway.ts"
import { RssSampler } from "./Stats.ts"

export interface RecoveryResult {
  readonly tier: "postgres" | "rabbitmq"
  /** Events held when the tier came back. */
  readonly backlog: number
  /** Events committed (or published) per second from the heal until caught up. */
  readonly drainMsgPerSec: number
  /** From the heal until caught up. */
  readonly catchUpSeconds: number
}

const gaugeValue = (gauge: Metric.Gauge<number>) => Metric.value(gauge).pipe(Effect.map((state) => state.value))
const counterValue = (counter: Metric.Counter<number>) => Metric.value(counter).pipe(Effect.map((state) => state.count))

/** Offers events at `rate` per second until interrupted. */
const feed = (rate: number) =>
  Effect.gen(function*() {
    const ingestion = yield* Ingestion
    const channelId = freshChannelId()
    const started = performance.now()
    for (let index = 0; ; index++) {
      const wait = started + (index / rate) * 1000 - performance.now()
      if (wait > 5) yield* Effect.sleep(Math.floor(wait))
      yield* ingestion.ingest(created(makeMessage(channelId, index + 1)))
    }
  })

const waitUntil = (condition: Effect.Effect<boolean>) =>
  Effect.gen(function*() {
    while (!(yield* condition)) yield* Effect.sleep("100 millis")
  })

const outage = (
  tier: "postgres" | "rabbitmq",
  proxy: TcpProxy,
  options: { readonly rate: number; readonly outageSeconds: number }
) =>
  Effect.gen(function*() {
    const ingestion = yield* Ingestion
    const feeder = yield* Effect.forkChild(feed(options.rate))
    yield* Effect.sleep("5 seconds")
    yield* proxy.cut
    yield* Effect.sleep(`${options.outageSeconds} seconds`)
    const backlog = tier === "postgres"
      ? (yield* ingestion.writerStatus).uncommitted
      : yield* gaugeValue(Metrics.busUnpublished)
    const committedBefore = yield* counterValue(tier === "postgres" ? Metrics.eventsCommitted : Metrics.busRelayPublished)
    yield* proxy.restore
    const healed = performance.now()
    yield* tier === "postgres"
      ? waitUntil(ingestion.writerStatus.pipe(Effect.map((status) => status.oldestUncommittedSeconds < 1)))
      : waitUntil(gaugeValue(Metrics.busUnpublished).pipe(Effect.map((value) => value === 0)))
    const catchUpSeconds = (performance.now() - healed) / 1000
    const drained = (yield* counterValue(tier === "postgres" ? Metrics.eventsCommitted : Metrics.busRelayPublished)) -
      committedBefore
    yield* Fiber.interrupt(feeder)
    return { tier, backlog, drainMsgPerSec: drained / catchUpSeconds, catchUpSeconds } satisfies RecoveryResult
  })

/** Both outages, each on a gateway of its own whose PostgreSQL and RabbitMQ are reached through proxies. */
export const recoveryPhase = (options: { readonly rate: number; readonly outageSeconds: number }) =>
  Effect.gen(function*() {
    const database = yield* makeTestDatabase("bench_recovery")
    const postgresProxy = yield* makeTcpProxy({ host: "127.0.0.1", port: 6434 })
    const rabbitmqProxy = yield* makeTcpProxy({ host: "127.0.0.1", port: 5672 })
    const exchange = uniqueName("bench.recovery")
    yield* makeTestConsumer(exchange, { consume: false })
    const gateway = testIngestion({
      databaseUrl: Redacted.value(urlVia(database, `127.0.0.1:${postgresProxy.port}`)),
      rabbitPort: rabbitmqProxy.port,
      exchange,
      keyPrefix: `${uniqueName("tgbench")}:`,
      ingest: { batchSize: 500, flushInterval: "10 millis", queueCapacity: 200_000, writers: 2, tierTimeout: "2 seconds" }
    })
    const postgres = yield* outage("postgres", postgresProxy, options).pipe(Effect.provide(Layer.fresh(gateway)))
    const rabbitmq = yield* outage("rabbitmq", rabbitmqProxy, options).pipe(Effect.provide(Layer.fresh(gateway)))
    return [postgres, rabbitmq] as const
  })

export interface RssResult {
  readonly outageSeconds: number
  readonly rate: number
  /** Events accepted but uncommitted when PostgreSQL came back (the queue's bound holds the rest at the source). */
  readonly backlog: number
  readonly rssBeforeMb: number
  readonly peakRssOutageMb: number
  readonly peakRssDrainMb: number
  readonly catchUpSeconds: number
}

/**
 * PostgreSQL unreachable for `outageSeconds` under `rate` msg/s, on the
 * daemon's default ingest bounds (`ingest.queueCapacity`,
 * `ingest.hotPathCapacity`): the peak RSS during the outage and during the
 * drain. The feeder waits whenever ingestion does, as the Telegram source does.
 */
export const rssThroughOutage = (options: { readonly rate: number; readonly outageSeconds: number }) =>
  Effect.gen(function*() {
    const database = yield* makeTestDatabase("bench_rss")
    const proxy = yield* makeTcpProxy({ host: "127.0.0.1", port: 6434 })
    const exchange = uniqueName("bench.rss")
    yield* makeTestConsumer(exchange, { consume: false })
    const gateway = testIngestion({
      databaseUrl: Redacted.value(urlVia(database, `127.0.0.1:${proxy.port}`)),
      exchange,
      keyPrefix: `${uniqueName("tgbench")}:`,
      // The daemon's defaults (src/services/GatewayConfig.ts), not the drain phase's large queue.
      ingest: { batchSize: 500, flushInterval: "10 millis", writers: 2 }
    })
    const rss = yield* RssSampler
    return yield* Effect.gen(function*() {
      const ingestion = yield* Ingestion
      const feeder = yield* Effect.forkChild(feed(options.rate))
      yield* Effect.sleep("10 seconds")
      const rssBeforeMb = rss.phasePeakMb()
      rss.startPhase()
      yield* proxy.cut
      const minutes = Math.floor(options.outageSeconds / 60)
      for (let minute = 1; minute <= minutes; minute++) {
        yield* Effect.sleep("1 minute")
        console.error(`outage minute ${minute}: peak RSS so far ${rss.phasePeakMb().toFixed(0)} MB`)
      }
      yield* Effect.sleep(`${options.outageSeconds - minutes * 60} seconds`)
      const backlog = (yield* ingestion.writerStatus).uncommitted
      const peakRssOutageMb = rss.phasePeakMb()
      rss.startPhase()
      yield* proxy.restore
      const healed = performance.now()
      yield* waitUntil(ingestion.writerStatus.pipe(Effect.map((status) => status.oldestUncommittedSeconds < 1)))
      const catchUpSeconds = (performance.now() - healed) / 1000
      const peakRssDrainMb = rss.phasePeakMb()
      yield* Fiber.interrupt(feeder)
      return {
        outageSeconds: options.outageSeconds,
        rate: options.rate,
        backlog,
        rssBeforeMb,
        peakRssOutageMb,
        peakRssDrainMb,
        catchUpSeconds
      } satisfies RssResult
    }).pipe(Effect.provide(Layer.fresh(gateway)))
  })
