/**
 * The ingestion program: every event a source receives goes to the three tiers.
 *
 * - PostgreSQL first, through the batch writer's bounded queue (the receiver
 *   waits when it is full; nothing is dropped). A source's read progress
 *   follows commits: each source batch's `onCommitted` runs once it and every
 *   batch before it are committed (src/domain/SourceBatch.ts).
 * - Then, handed to the hot path (HotPath.ts): supervised worker fibers that
 *   run the Redis dedup check and cache write, then the RabbitMQ publish,
 *   each with its tier's own timeout and a short retry schedule.
 *
 * Redis or RabbitMQ failing never blocks or fails the database write: each
 * outage is logged once, every event that missed a tier is counted, and the
 * tier is used again as soon as it answers.
 */
import { Clock, Context, Duration, Effect, Layer, Metric, Option, PubSub, Schedule, Schema } from "effect"
import type * as Scope from "effect/Scope"
import { decodeMessageEvent, eventKind, type MessageEvent } from "../domain/Message.ts"
import type { SourceBatch } from "../domain/SourceBatch.ts"
import { EventBus } from "../services/EventBus.ts"
import { DatabaseConfig, IngestConfig, OtelConfig, RabbitMqConfig, RedisConfig } from "../services/GatewayConfig.ts"
import { MessageStore } from "../services/MessageStore.ts"
import { MessageCache } from "../services/MessageCache.ts"
import * as Metrics from "../services/Metrics.ts"
import { makeBatchWriter } from "./BatchWriter.ts"
import { runBusRelay } from "./BusRelay.ts"
import { makeCacheRefill } from "./CacheRefill.ts"
import { makeCommitTracker, makeReleaser } from "./CommitTracker.ts"
import { makeHotPath } from "./HotPath.ts"
import type { IngestProgress } from "./IngestProgress.ts"
import * as MessageTrace from "./MessageTrace.ts"
import { observeLatencies } from "./ObserveLatencies.ts"
import { makePublishLedger } from "./PublishLedger.ts"
import { makeTierHealth } from "./TierHealth.ts"

export class MalformedEvent extends Schema.TaggedError<MalformedEvent>()("MalformedEvent", {
  reason: Schema.String
}) {
  override get message(): string {
    return `Malformed event rejected: ${this.reason}`
  }
}

export interface WriterStatus {
  /** Events accepted and not yet committed. */
  readonly uncommitted: number
  /** Age of the oldest of them, if any. */
  readonly oldestUncommittedSeconds: number
}

export class Ingestion extends Context.Service<Ingestion, {
  /** Accepts one event with no read progress to record; returns once it is queued (waits while the queue is full). */
  readonly ingest: (event: MessageEvent) => Effect.Effect<void>
  /** Accepts a source batch; its `onCommitted` runs once it and every earlier batch are committed. */
  readonly ingestBatch: (batch: SourceBatch) => Effect.Effect<void>
  /** Validates an untrusted payload first: a malformed one is rejected, counted, and nothing else changes. */
  readonly ingestUnknown: (payload: unknown) => Effect.Effect<void, MalformedEvent>
  /** A subscription to progress notifications; scoped. */
  readonly progress: Effect.Effect<PubSub.Subscription<IngestProgress>, never, Scope.Scope>
  /** Events accepted and not yet committed. */
  readonly pending: Effect.Effect<number>
  /** The writer's backlog, also refreshed into `ingest_queue_depth` and `ingest_oldest_uncommitted_seconds`. */
  readonly writerStatus: Effect.Effect<WriterStatus>
  /** What a loop waiting on PostgreSQL found (src/programs/DatabaseWait.ts): `tier_up{tier="postgres"}` says down while it fails. */
  readonly observeDatabase: (reachable: boolean) => Effect.Effect<void>
}>()("telegram-gateway/Ingestion") {}

const receivedByKind = {
  new: Metrics.eventsReceived.pipe(Metric.withAttributes({ kind: "new" })),
  edited: Metrics.eventsReceived.pipe(Metric.withAttributes({ kind: "edited" })),
  deleted: Metrics.eventsReceived.pipe(Metric.withAttributes({ kind: "deleted" }))
}

/** How often the backlog gauges are refreshed between scrapes. */
const gaugeRefreshInterval = "1 second"

export const make = Effect.gen(function*() {
  const config = yield* IngestConfig
  const database = yield* DatabaseConfig
  const rabbitmqConfig = yield* RabbitMqConfig
  // One trace per message only when spans go somewhere (src/layers/Tracing.ts).
  const tracing = Option.isSome((yield* OtelConfig).exporterOtlpEndpoint)
  const cache = yield* MessageCache
  const bus = yield* EventBus
  const store = yield* MessageStore
  const ledger = makePublishLedger()
  const refill = yield* makeCacheRefill({ cache, store, redis: yield* RedisConfig })
  const progress = yield* PubSub.sliding<IngestProgress>(65_536)
  const tracker = makeCommitTracker()
  const release = yield* makeReleaser

  const redis = yield* makeTierHealth({
    tier: "redis",
    failures: Metrics.redisFailures,
    downMessage: "Redis cache unavailable, falling back to database-only",
    upMessage: "Redis cache available again, refilling it from PostgreSQL",
    onRecovered: refill.request
  })
  const rabbitmq = yield* makeTierHealth({
    tier: "rabbitmq",
    failures: Metrics.rabbitmqFailures,
    downMessage: "RabbitMQ unavailable, events are stored and the bus relay will publish them",
    upMessage: "RabbitMQ available again, publishing resumed"
  })

  const writer = yield* makeBatchWriter({
    ...config,
    // The store bounds each statement by `database.statementTimeout`; this is
    // the backstop for a driver that does not give up.
    writeDeadline: Duration.sum(database.statementTimeout, Duration.seconds(5)),
    uncommitted: tracker.uncommitted,
    onCommitted: (entries) =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const events = entries.map((entry) => entry.event)
        yield* observeLatencies(Metrics.commitLatency, events, now)
        yield* release(tracker.committed(entries.map((entry) => entry.batch)))
        yield* PubSub.publish(progress, { _tag: "Committed", events, at: now })
      })
  })

  // Registered after the writer, so it runs first on shutdown: cache and bus
  // work already queued finishes (bounded) before Redis and RabbitMQ close.
  const hotPath = yield* makeHotPath({
    cache,
    bus,
    redis,
    rabbitmq,
    progress,
    ledger,
    capacity: config.hotPathCapacity,
    publishCapacity: config.hotPathCapacity,
    shutdownTimeout: config.tierTimeout
  })

  // Registered last, so it stops first: no relay publish races the bus closing.
  yield* runBusRelay({
    bus,
    ledger,
    rabbitmq,
    exchange: rabbitmqConfig.exchange,
    interval: rabbitmqConfig.relayInterval,
    pageSize: rabbitmqConfig.relayPageSize,
    // Past every publish the hot path may have in flight, and a page more.
    readAhead: config.hotPathCapacity + rabbitmqConfig.relayPageSize,
    // The hot path's own attempts (three, each bounded by the publish timeout) come first.
    grace: Duration.sum(Duration.times(rabbitmqConfig.publishTimeout, 3), Duration.seconds(1))
  }).pipe(Effect.forkScoped)

  // Redis may have restarted while the gateway was down.
  yield* refill.request

  const writerStatus = Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    const oldest = tracker.oldestUncommittedAt()
    return {
      uncommitted: tracker.uncommitted(),
      oldestUncommittedSeconds: oldest === undefined ? 0 : Math.max(0, now - oldest) / 1000
    }
  })
  const refreshGauges = writerStatus.pipe(
    Effect.tap((status) => Metric.update(Metrics.writeQueueDepth, status.uncommitted)),
    Effect.tap((status) => Metric.update(Metrics.oldestUncommitted, status.oldestUncommittedSeconds))
  )
  yield* refreshGauges.pipe(Effect.repeat(Schedule.spaced(gaugeRefreshInterval)), Effect.forkScoped)

  /** Events of one traced batch, one by one (a trace per message when spans are exported). */
  const acceptTraced = (events: ReadonlyArray<MessageEvent>, seq: number) =>
    Effect.gen(function*() {
      for (const event of events) {
        yield* Metric.update(receivedByKind[eventKind(event)], 1)
        const trace = yield* MessageTrace.begin(event)
        const entry = { event, batch: seq, trace }
        yield* writer.offer(entry)
        yield* hotPath.offer(entry)
      }
    })

  /** From `events[start]` on, one by one: the writer's queue is full (or closed), so each may wait. */
  const acceptWaiting = (events: ReadonlyArray<MessageEvent>, start: number, seq: number) =>
    Effect.gen(function*() {
      for (let index = start; index < events.length; index++) {
        const entry = { event: events[index]!, batch: seq, trace: undefined }
        yield* writer.offer(entry)
        yield* hotPath.offer(entry)
      }
    })

  /** Counted by plain calls on the fiber's context: this runs for every source batch, often of one event. */
  const countReceived = (events: ReadonlyArray<MessageEvent>, context: Context.Context<never>) => {
    if (events.length === 1) return receivedByKind[eventKind(events[0]!)].updateUnsafe(1, context)
    const counts = { new: 0, edited: 0, deleted: 0 }
    for (const event of events) counts[eventKind(event)]++
    if (counts.new > 0) receivedByKind.new.updateUnsafe(counts.new, context)
    if (counts.edited > 0) receivedByKind.edited.updateUnsafe(counts.edited, context)
    if (counts.deleted > 0) receivedByKind.deleted.updateUnsafe(counts.deleted, context)
  }

  // Per event on the common path (tracing off, room in the writer's queue)
  // nothing but the entry both queues share: no Effect, no generator step.
  const ingestBatch = (batch: SourceBatch) =>
    Effect.withFiber((fiber) => {
      const acceptedAt = fiber.getRef(Clock.Clock).currentTimeMillisUnsafe()
      const events = batch.events
      const seq = tracker.register(events.length, batch.onCommitted, acceptedAt)
      if (events.length === 0) return release(tracker.committed([]))
      if (tracing) return acceptTraced(events, seq)
      let skipped = 0
      for (let index = 0; index < events.length; index++) {
        const entry = { event: events[index]!, batch: seq, trace: undefined }
        if (!writer.offerUnsafe(entry)) {
          countReceived(events, fiber.context)
          return Effect.andThen(hotPath.countSkipped(skipped), acceptWaiting(events, index, seq))
        }
        if (!hotPath.offerUnsafe(entry, acceptedAt)) skipped++
      }
      countReceived(events, fiber.context)
      return hotPath.countSkipped(skipped)
    })

  const ingest = (event: MessageEvent) => ingestBatch({ events: [event], onCommitted: Effect.void })

  const ingestUnknown = (payload: unknown) =>
    decodeMessageEvent(payload).pipe(
      Effect.mapError((error) => new MalformedEvent({ reason: error.message })),
      Effect.tapError((error) =>
        Metric.update(Metrics.eventsRejected.pipe(Metric.withAttributes({ reason: "malformed" })), 1).pipe(
          Effect.andThen(Effect.logWarning(error.message))
        )
      ),
      Effect.flatMap(ingest)
    )

  return Ingestion.of({
    ingest,
    ingestBatch,
    ingestUnknown,
    progress: PubSub.subscribe(progress),
    pending: Effect.sync(tracker.uncommitted),
    writerStatus: refreshGauges,
    observeDatabase: writer.observeDatabase
  })
})

/** Needs the three tiers; the tiers' own layers are provided at the edge. */
export const layer = Layer.effect(Ingestion, make)
