/**
 * The ingestion program: every event a source receives goes to the three tiers.
 *
 * - PostgreSQL first, through the batch writer's bounded queue (the receiver
 *   waits when it is full; nothing is dropped).
 * - Then, handed to the hot path (HotPath.ts): supervised worker fibers that
 *   run the Redis dedup check and cache write, then the RabbitMQ publish,
 *   each with its tier's own timeout and a short retry schedule.
 *
 * Redis or RabbitMQ failing never blocks or fails the database write: each
 * outage is logged once, every event that missed a tier is counted, and the
 * tier is used again as soon as it answers.
 */
import { Context, Effect, Layer, Metric, PubSub, Schema } from "effect"
import type * as Scope from "effect/Scope"
import { decodeMessageEvent, eventKind, type MessageEvent } from "../domain/Message.ts"
import { EventBus } from "../services/EventBus.ts"
import { IngestConfig } from "../services/GatewayConfig.ts"
import { type DedupVerdict, MessageCache } from "../services/MessageCache.ts"
import * as Metrics from "../services/Metrics.ts"
import { makeBatchWriter } from "./BatchWriter.ts"
import { makeHotPath } from "./HotPath.ts"
import { makeTierHealth } from "./TierHealth.ts"

export class MalformedEvent extends Schema.TaggedError<MalformedEvent>()("MalformedEvent", {
  reason: Schema.String
}) {
  override get message(): string {
    return `Malformed event rejected: ${this.reason}`
  }
}

/** What happened to events, for live views, benchmarks and tests. */
export type IngestProgress =
  | {
    readonly _tag: "HotPathDone"
    readonly event: MessageEvent
    readonly verdict: DedupVerdict | "unknown"
    readonly cached: boolean
    readonly published: boolean
    readonly at: number
  }
  | { readonly _tag: "Committed"; readonly events: ReadonlyArray<MessageEvent>; readonly at: number }

export class Ingestion extends Context.Service<Ingestion, {
  /** Accepts an event; returns once it is queued for the database (waits while the queue is full). */
  readonly ingest: (event: MessageEvent) => Effect.Effect<void>
  /** Validates an untrusted payload first: a malformed one is rejected, counted, and nothing else changes. */
  readonly ingestUnknown: (payload: unknown) => Effect.Effect<void, MalformedEvent>
  /** A subscription to progress notifications; scoped. */
  readonly progress: Effect.Effect<PubSub.Subscription<IngestProgress>, never, Scope.Scope>
  /** Events waiting in the writer's queue. */
  readonly pending: Effect.Effect<number>
}>()("telegram-gateway/Ingestion") {}

const receivedByKind = {
  new: Metrics.eventsReceived.pipe(Metric.withAttributes({ kind: "new" })),
  edited: Metrics.eventsReceived.pipe(Metric.withAttributes({ kind: "edited" })),
  deleted: Metrics.eventsReceived.pipe(Metric.withAttributes({ kind: "deleted" }))
}

const millisSince = (receivedAt: number) => Math.max(0, Date.now() - receivedAt) / 1000

export const make = Effect.gen(function*() {
  const config = yield* IngestConfig
  const cache = yield* MessageCache
  const bus = yield* EventBus
  const progress = yield* PubSub.sliding<IngestProgress>(65_536)

  const redis = yield* makeTierHealth({
    tier: "redis",
    failures: Metrics.redisFailures,
    downMessage: "Redis cache unavailable, falling back to database-only",
    upMessage: "Redis cache available again"
  })
  const rabbitmq = yield* makeTierHealth({
    tier: "rabbitmq",
    failures: Metrics.rabbitmqFailures,
    downMessage: "RabbitMQ unavailable, events are stored without being published",
    upMessage: "RabbitMQ available again, publishing resumed"
  })

  const writer = yield* makeBatchWriter({
    ...config,
    onCommitted: (events) =>
      Effect.gen(function*() {
        for (const event of events) {
          yield* Metric.update(Metrics.commitLatency, millisSince(event.receivedAt))
        }
        yield* PubSub.publish(progress, { _tag: "Committed", events, at: Date.now() })
      })
  })

  // Registered after the writer, so it runs first on shutdown: cache and bus
  // work already queued finishes (bounded) before Redis and RabbitMQ close.
  const hotPath = yield* makeHotPath({ cache, bus, redis, rabbitmq, progress, shutdownTimeout: config.tierTimeout })

  const ingest = (event: MessageEvent) =>
    Effect.gen(function*() {
      yield* Metric.update(receivedByKind[eventKind(event)], 1)
      yield* writer.offer(event)
      yield* hotPath.offer(event)
    })

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
    ingestUnknown,
    progress: PubSub.subscribe(progress),
    pending: writer.pending
  })
})

/** Needs the three tiers; the tiers' own layers are provided at the edge. */
export const layer = Layer.effect(Ingestion, make)
