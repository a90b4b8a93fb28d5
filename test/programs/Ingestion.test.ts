/**
 * The ingestion program against the real tiers: Redis, RabbitMQ and
 * PostgreSQL through PgBouncer. Outages are made with TCP proxies that the
 * tests cut and restore, so the machine's shared services keep running.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Logger, Metric, Option, type PubSub, Redacted } from "effect"
import type * as Scope from "effect/Scope"
import { type ChannelId, eventKey, type MessageEvent } from "../../src/domain/Message.ts"
import type { IngestProgress } from "../../src/programs/IngestProgress.ts"
import { Ingestion } from "../../src/programs/Ingestion.ts"
import { MessageCache } from "../../src/services/MessageCache.ts"
import { MessageStore } from "../../src/services/MessageStore.ts"
import * as Metrics from "../../src/services/Metrics.ts"
import { makeTestDatabase, query, type TestDatabase, urlVia } from "../support/Database.ts"
import { eventually } from "../support/Eventually.ts"
import { makeTcpProxy } from "../support/TcpProxy.ts"
import { created, deleted, edited, freshChannelId, makeMessage } from "../support/TestEvents.ts"
import {
  awaitSettled,
  makeTestConsumer,
  type TestGatewayOptions,
  testIngestion,
  uniqueName
} from "../support/TestGateway.ts"

interface GatewayUnderTest {
  readonly ingestion: Ingestion["Service"]
  /** Subscribed before the test ingests anything. */
  readonly progress: PubSub.Subscription<IngestProgress>
  /** A channel no other test uses. */
  readonly channelId: ChannelId
}

/** Builds the ingestion program for one test and runs `body` with it. */
const withGateway = <A, E>(
  options: Partial<TestGatewayOptions> & { readonly databaseUrl: string },
  body: (gateway: GatewayUnderTest) => Effect.Effect<A, E, Ingestion | MessageStore | MessageCache | Scope.Scope>
) =>
  Effect.gen(function*() {
    const exchange = options.exchange ?? uniqueName("test.messages")
    const context = yield* Layer.build(testIngestion({
      exchange,
      keyPrefix: options.keyPrefix ?? `${uniqueName("tgtest")}:`,
      ...options
    }))
    return yield* Effect.gen(function*() {
      const ingestion = yield* Ingestion
      const progress = yield* ingestion.progress
      return yield* body({ ingestion, progress, channelId: freshChannelId() })
    }).pipe(Effect.provide(context))
  })

/** A logger that keeps every message, beside the default one. */
const capturingLogs = () => {
  const lines: Array<string> = []
  const logger = Logger.make(({ message }) => {
    lines.push((Array.isArray(message) ? message : [message]).map(String).join(" "))
  })
  return { lines, layer: Logger.layer([logger], { mergeWithExisting: true }) }
}

const counter = (metric: Metric.Counter<number>) => Metric.value(metric).pipe(Effect.map((state) => state.count))

const ingestAll = (events: ReadonlyArray<MessageEvent>) =>
  Effect.gen(function*() {
    const ingestion = yield* Ingestion
    for (const event of events) yield* ingestion.ingest(event)
  })

const rowCount = (database: TestDatabase, channelId: number) =>
  query<{ count: string }>(
    database,
    `SELECT count(*)::text AS count FROM messages WHERE channel_id = ${channelId}`
  ).pipe(Effect.map((rows) => Number(rows[0]?.count ?? 0)))

describe("Ingestion", () => {
  it.live("writes a message to PostgreSQL, Redis and RabbitMQ under the same stable key", () =>
    Effect.gen(function*() {
      const database = yield* makeTestDatabase("ingest_three_tiers")
      const exchange = uniqueName("test.messages")
      const consumer = yield* makeTestConsumer(exchange)
      yield* withGateway(
        { databaseUrl: Redacted.value(database.url), exchange },
        ({ channelId, ingestion, progress }) =>
          Effect.gen(function*() {
          const event = created(makeMessage(channelId, 1))
          yield* ingestion.ingest(event)
          const [hot] = yield* awaitSettled(progress, [event])

          const versions = yield* (yield* MessageStore).versions(channelId, event.message.messageId)
          assert.strictEqual(versions.length, 1)
          assert.strictEqual(versions[0]?.message.text, event.message.text)

          const cached = yield* (yield* MessageCache).get(eventKey(event))
          assert.isTrue(Option.isSome(cached))

          assert.deepStrictEqual({ cached: hot?.cached, published: hot?.published, verdict: hot?.verdict }, {
            cached: true,
            published: true,
            verdict: "new"
          })
          yield* eventually("the event on the consumer's queue", () =>
            consumer.received.some((message) => message.properties.messageId === eventKey(event)))
          // A second publish of it would arrive right behind the first.
          yield* Effect.sleep("200 millis")
          const onQueue = consumer.received.filter((message) => message.properties.messageId === eventKey(event))
          assert.strictEqual(onQueue.length, 1)
          assert.strictEqual(onQueue[0]?.fields.routingKey, `new.${channelId}`)
        })
      )
    }))

  it.live("keeps exactly one row and one cache entry for a repeated message and a repeated batch", () =>
    Effect.gen(function*() {
      const database = yield* makeTestDatabase("ingest_dedup")
      const exchange = uniqueName("test.messages")
      const consumer = yield* makeTestConsumer(exchange)
      yield* withGateway(
        { databaseUrl: Redacted.value(database.url), exchange },
        ({ channelId, ingestion, progress }) =>
          Effect.gen(function*() {
          const batch = [1, 2, 3, 4, 5].map((id) => created(makeMessage(channelId, id)))
          const duplicatesBefore = yield* counter(Metrics.eventsDuplicate)

          yield* ingestAll(batch)
          yield* awaitSettled(progress, batch)
          yield* ingestAll(batch)
          yield* awaitSettled(progress, batch)
          yield* ingestAll([batch[0]!])
          yield* awaitSettled(progress, [batch[0]!])

          assert.strictEqual(yield* rowCount(database, channelId), 5)
          const recent = yield* (yield* MessageCache).recent(channelId, 100)
          assert.strictEqual(recent.length, 5)
          assert.strictEqual((yield* counter(Metrics.eventsDuplicate)) - duplicatesBefore, 6)
          yield* eventually("the five events on the consumer's queue", () => consumer.received.length >= 5)
          // A republished duplicate would arrive right behind them.
          yield* Effect.sleep("200 millis")
          assert.strictEqual(consumer.received.length, 5, "a redelivered event is not published again")
        })
      )
    }))

  it.live("records an edit as a new version and a deletion on every version", () =>
    Effect.gen(function*() {
      const database = yield* makeTestDatabase("ingest_versions")
      yield* withGateway(
        { databaseUrl: Redacted.value(database.url) },
        ({ channelId, ingestion, progress }) =>
          Effect.gen(function*() {
          const original = makeMessage(channelId, 7)
          const events = [created(original), edited(original, original.date + 60, "EDIT: TP 63000"), deleted(channelId, 7)]
          yield* ingestAll(events)
          yield* awaitSettled(progress, events)
          const versions = yield* (yield* MessageStore).versions(channelId, original.messageId)
          assert.deepStrictEqual(versions.map((version) => version.message.text), [original.text, "EDIT: TP 63000"])
          assert.isTrue(versions.every((version) => version.deletedAt !== null))
        })
      )
    }))

  it.live("stores text with NUL, lone surrogates and 100 KB without loss, and rejects a malformed event", () =>
    Effect.gen(function*() {
      const database = yield* makeTestDatabase("ingest_bad_input")
      yield* withGateway(
        { databaseUrl: Redacted.value(database.url) },
        ({ channelId, ingestion, progress }) =>
          Effect.gen(function*() {
          const texts = ["NUL\u0000inside", "lone \ud800 high and \udfff low", "x".repeat(100 * 1024)]
          const events = texts.map((text, index) => created(makeMessage(channelId, index + 1, { text })))
          const malformedCount = Metrics.eventsRejected.pipe(Metric.withAttributes({ reason: "malformed" }))
          const rejectedBefore = yield* counter(malformedCount)

          const malformed = yield* ingestion.ingestUnknown({ _tag: "MessageCreated", message: { channelId: "nope" } }).pipe(
            Effect.flip
          )
          assert.strictEqual(malformed._tag, "MalformedEvent")
          assert.include(malformed.message, "channelId")
          assert.strictEqual((yield* counter(malformedCount)) - rejectedBefore, 1)

          for (const event of events) yield* ingestion.ingestUnknown(JSON.parse(JSON.stringify(event)))
          yield* awaitSettled(progress, events)
          const store = yield* MessageStore
          for (const event of events) {
            const [version] = yield* store.versions(channelId, event.message.messageId)
            assert.strictEqual(version?.message.text, event.message.text)
          }
          const cached = yield* (yield* MessageCache).get(eventKey(events[0]!))
          assert.strictEqual(Option.getOrThrow(cached)._tag, "MessageCreated")
        })
      )
    }))

  it.live("keeps writing to PostgreSQL when Redis is down, warns once, and uses Redis again when it is back", () =>
    Effect.gen(function*() {
      const database = yield* makeTestDatabase("ingest_redis_down")
      const redisProxy = yield* makeTcpProxy({ host: "127.0.0.1", port: 6379 })
      const logs = capturingLogs()
      yield* withGateway(
        { databaseUrl: Redacted.value(database.url), redisPort: redisProxy.port },
        ({ channelId, ingestion, progress }) =>
          Effect.gen(function*() {
          const failuresBefore = yield* counter(Metrics.redisFailures)
          yield* redisProxy.cut

          const during = Array.from({ length: 50 }, (_, index) => created(makeMessage(channelId, index + 1)))
          yield* ingestAll(during)
          const hot = yield* awaitSettled(progress, during)
          assert.deepStrictEqual(
            hot.filter((done) => done.cached || !done.published).map((done) => ({ ...done, event: eventKey(done.event) })),
            [],
            "with Redis down nothing is cached and everything is still published"
          )
          assert.strictEqual(yield* rowCount(database, channelId), 50)
          assert.isAbove((yield* counter(Metrics.redisFailures)) - failuresBefore, 49)
          const warnings = logs.lines.filter((line) =>
            line === "Redis cache unavailable, falling back to database-only"
          )
          assert.strictEqual(warnings.length, 1)

          yield* redisProxy.restore
          const after = created(makeMessage(channelId, 1000))
          yield* Effect.gen(function*() {
            yield* ingestion.ingest(after)
            const [done] = yield* awaitSettled(progress, [after])
            if (!done?.cached) return yield* Effect.fail("not cached yet")
          }).pipe(Effect.eventually, Effect.timeout("10 seconds"))
          assert.isTrue(Option.isSome(yield* (yield* MessageCache).get(eventKey(after))))
        })
      ).pipe(Effect.provide(logs.layer))
    }))

  it.live("keeps writing to PostgreSQL when RabbitMQ is down and publishes again once it reconnects by itself", () =>
    Effect.gen(function*() {
      const database = yield* makeTestDatabase("ingest_rabbit_down")
      const rabbitProxy = yield* makeTcpProxy({ host: "127.0.0.1", port: 5672 })
      const exchange = uniqueName("test.messages")
      const consumer = yield* makeTestConsumer(exchange)
      yield* withGateway(
        { databaseUrl: Redacted.value(database.url), rabbitPort: rabbitProxy.port, exchange },
        ({ channelId, ingestion, progress }) =>
          Effect.gen(function*() {
          const failuresBefore = yield* counter(Metrics.rabbitmqFailures)
          yield* rabbitProxy.cut

          const during = Array.from({ length: 30 }, (_, index) => created(makeMessage(channelId, index + 1)))
          yield* ingestAll(during)
          const hot = yield* awaitSettled(progress, during)
          assert.deepStrictEqual(
            hot.filter((done) => !done.cached || done.published).map((done) => ({ ...done, event: eventKey(done.event) })),
            [],
            "with RabbitMQ down everything is still cached and nothing is published"
          )
          assert.strictEqual(yield* rowCount(database, channelId), 30)
          assert.isAbove((yield* counter(Metrics.rabbitmqFailures)) - failuresBefore, 29)

          yield* rabbitProxy.restore
          let next = 2000
          const published = yield* Effect.gen(function*() {
            const probe = created(makeMessage(channelId, next++))
            yield* ingestion.ingest(probe)
            const [done] = yield* awaitSettled(progress, [probe])
            if (!done?.published) return yield* Effect.fail("not published yet")
            return eventKey(probe)
          }).pipe(Effect.eventually, Effect.timeout("15 seconds"))
          yield* eventually("the published probe on the consumer's queue", () =>
            consumer.received.some((message) => message.properties.messageId === published))
          assert.isAbove(consumer.received.length, 0)
        })
      )
    }))

  it.live("holds events while PostgreSQL is unreachable and commits every one when it returns", () =>
    Effect.gen(function*() {
      const database = yield* makeTestDatabase("ingest_pg_down")
      const pgProxy = yield* makeTcpProxy({ host: "127.0.0.1", port: 6434 })
      yield* withGateway(
        { databaseUrl: Redacted.value(urlVia(database, `127.0.0.1:${pgProxy.port}`)) },
        ({ channelId, ingestion, progress }) =>
          Effect.gen(function*() {
          const failuresBefore = yield* counter(Metrics.databaseFailures)
          yield* pgProxy.cut

          const events = Array.from({ length: 300 }, (_, index) => created(makeMessage(channelId, index + 1)))
          yield* ingestAll(events)
          yield* Effect.sleep("1500 millis")
          assert.strictEqual(yield* rowCount(database, channelId), 0)
          assert.isAbove((yield* counter(Metrics.databaseFailures)) - failuresBefore, 0)

          yield* pgProxy.restore
          yield* awaitSettled(progress, events).pipe(Effect.timeout("20 seconds"))
          assert.strictEqual(yield* rowCount(database, channelId), 300)
        })
      )
    }))
})
