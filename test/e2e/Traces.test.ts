/**
 * One trace per message, as a collector sees it: the real gateway process
 * (`telegram-gateway run`) between the Telegram simulator and the shared
 * PostgreSQL (through PgBouncer), Redis and RabbitMQ, exporting to an OTLP
 * receiver in this process (test/support/OtlpReceiver.ts). A consumer bound
 * to the exchange reads each message's `traceparent` header.
 */
import { assert, describe, it } from "@effect/vitest"
import type * as Amqp from "amqplib"
import { Effect, Redacted } from "effect"
import { writeSession } from "../../src/layers/SessionFile.ts"
import { TelegramSimulator } from "../../src/simulator/index.ts"
import { applicationServer, makeTestDatabase, query } from "../support/Database.ts"
import { simulatorEnv, startGatewayProcess } from "../support/GatewayProcess.ts"
import { type ReceivedSpan, startOtlpReceiver } from "../support/OtlpReceiver.ts"
import { makeTestConsumer, uniqueName } from "../support/TestGateway.ts"
import { eventuallyValue } from "../support/Eventually.ts"
import { makeSessionDirectory } from "../telegram/Harness.ts"

/** A gateway and its span exports take their time on a busy machine. */
const slowly = { timeout: "60 seconds", interval: "200 millis" } as const

/** Ports of the ops range (21000-21999) for the receivers, and one where nothing listens. */
const receiverPorts = { protobuf: 21318, json: 21319, closed: 21317 }

/** The gateway, ingesting one simulated channel and exporting spans to `endpoint`. */
const startTracedGateway = (name: string, otel: Record<string, string>) =>
  Effect.gen(function*() {
    const simulator = yield* TelegramSimulator.start()
    const channel = simulator.world.addChannel({ username: uniqueName("traces").slice(0, 24), title: "Traces", kind: "channel" })
    const sessionFile = yield* makeSessionDirectory
    yield* writeSession(sessionFile, Redacted.make(simulator.sessionString))
    const database = yield* makeTestDatabase(name)
    const exchange = uniqueName("traces.messages")
    const consumer = yield* makeTestConsumer(exchange)
    const gateway = yield* startGatewayProcess({
      env: {
        DATABASE_URL: Redacted.value(database.url),
        DATABASE_MIGRATION_URL: Redacted.value(database.migrationUrl),
        REDIS_KEY_PREFIX: `${uniqueName("traces")}:`,
        RABBITMQ_EXCHANGE: exchange,
        ...simulatorEnv(simulator, sessionFile, `@${channel.username}`),
        OTEL_EXPORT_INTERVAL: "200 millis",
        ...otel
      }
    })
    yield* gateway.waitForLog(/first read, starting at pts/, "90 seconds")
    return { simulator, channel, database, consumer, gateway }
  })

const header = (message: Amqp.ConsumeMessage): string | undefined =>
  (message.properties.headers as Record<string, unknown> | undefined)?.traceparent as string | undefined

describe("Traces", () => {
  it.live("one trace per message: receipt, Redis write, RabbitMQ publish with its traceparent, and the linked PostgreSQL batch", () =>
    Effect.gen(function*() {
      const receiver = yield* startOtlpReceiver(receiverPorts.protobuf)
      const { channel, consumer, database, gateway, simulator } = yield* startTracedGateway("traces", {
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
        OTEL_SAMPLE_RATIO: "1"
      })

      const posted = Array.from({ length: 12 }, (_, index) => simulator.world.post(channel.id, { text: `traced ${index}` }))
      const edited = simulator.world.edit(channel.id, posted[0]!.id, "traced 0, edited")
      const keys = [
        ...posted.map((message) => `${channel.id}:${message.id}:0`),
        `${channel.id}:${posted[0]!.id}:${edited.editDate}`
      ]

      const delivered = yield* eventuallyValue("every message on the bus", () => {
        const byKey = new Map(consumer.received.map((message) => [message.properties.messageId as string, message]))
        return keys.every((key) => byKey.has(key)) ? byKey : undefined
      }, slowly)
      const roots = yield* eventuallyValue("a finished root span for every message", () => {
        const found = new Map<string, Array<ReceivedSpan>>()
        for (const span of receiver.spans()) {
          if (span.name !== "Ingestion.message") continue
          const key = span.attributes["messaging.message.id"] as string
          found.set(key, [...(found.get(key) ?? []), span])
        }
        return keys.every((key) => found.has(key)) ? found : undefined
      }, slowly)
      // The spans of the batches and publishes end before their messages' roots; wait for one more export.
      yield* Effect.sleep("1 second")
      const spans = receiver.spans()
      const byTrace = new Map<string, Array<ReceivedSpan>>()
      for (const span of spans) byTrace.set(span.traceId, [...(byTrace.get(span.traceId) ?? []), span])
      const bySpanId = new Map(spans.map((span) => [span.spanId, span]))

      for (const key of keys) {
        // One trace per message, with one root.
        const mine = roots.get(key)!
        assert.strictEqual(mine.length, 1, `${key}: one root span`)
        const root = mine[0]!
        assert.isUndefined(root.parentSpanId)
        assert.strictEqual(root.kind, 5, "the root is a consumer span")
        const trace = byTrace.get(root.traceId)!
        assert.strictEqual(trace.filter((span) => span.name === "Ingestion.message").length, 1, `${key}: one message per trace`)

        const redis = trace.filter((span) => span.name === "MessageCache.remember")
        assert.strictEqual(redis.length, 1, `${key}: one Redis write`)
        assert.strictEqual(redis[0]!.parentSpanId, root.spanId)
        assert.strictEqual(redis[0]!.attributes["db.system.name"], "redis")
        assert.strictEqual(redis[0]!.attributes["cache.verdict"], "new")

        const publishes = trace.filter((span) => span.name === "EventBus.publish")
        assert.isAtLeast(publishes.length, 1, `${key}: a RabbitMQ publish`)
        const confirmed = publishes.filter((span) => span.statusCode === 1)
        assert.strictEqual(confirmed.length, 1, `${key}: one confirmed publish`)
        assert.strictEqual(confirmed[0]!.parentSpanId, root.spanId)
        assert.strictEqual(confirmed[0]!.kind, 4, "the publish is a producer span")
        assert.strictEqual(confirmed[0]!.attributes["messaging.message.id"], key)

        // The consumer can continue this very trace from the AMQP header.
        assert.strictEqual(header(delivered.get(key)!), `00-${root.traceId}-${confirmed[0]!.spanId}-01`)

        // The commit: the root links its batch, and the batch links the root back.
        const batchLinks = root.links.map((link) => bySpanId.get(link.spanId)).filter((span) => span?.name === "BatchWriter.commit")
        assert.strictEqual(batchLinks.length, 1, `${key}: linked to the batch that committed it`)
        const batch = batchLinks[0]!
        assert.notStrictEqual(batch.traceId, root.traceId)
        assert.isTrue(batch.links.some((link) => link.spanId === root.spanId && link.traceId === root.traceId))
      }

      // Every SQL span of the batches names the connection it used: PgBouncer's port, not 5432.
      const batchTraces = new Set(spans.filter((span) => span.name === "BatchWriter.commit").map((span) => span.traceId))
      const sqlSpans = spans.filter((span) => batchTraces.has(span.traceId) && span.attributes["db.system.name"] === "postgresql")
      assert.isAbove(sqlSpans.length, 0)
      for (const span of sqlSpans) {
        assert.strictEqual(span.attributes["server.port"], applicationServer.port, span.name)
        assert.strictEqual(span.attributes["db.namespace"], database.name)
      }
      assert.isTrue(receiver.contentTypes().every((type) => type === "application/x-protobuf"), "protobuf by default")

      const committed = yield* query<{ count: number }>(database, "SELECT count(*)::int AS count FROM messages")
      assert.strictEqual(committed[0]!.count, keys.length)
      const names = new Map<string, number>()
      for (const span of spans) names.set(span.name, (names.get(span.name) ?? 0) + 1)
      console.log(`traces: ${spans.length} spans for ${keys.length} messages, ${byTrace.size} traces`, [...names])
      gateway.kill("SIGTERM")
      assert.strictEqual(yield* gateway.exited, 0)
    }), { timeout: 180_000 })

  it.live("a collector that does not answer costs spans only: warned once, counted, every message still stored and published", () =>
    Effect.gen(function*() {
      const { channel, consumer, database, gateway, simulator } = yield* startTracedGateway("traces_collector_down", {
        OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${receiverPorts.closed}`
      })
      const posted = Array.from({ length: 5 }, (_, index) => simulator.world.post(channel.id, { text: `lost spans ${index}` }))
      const keys = posted.map((message) => `${channel.id}:${message.id}:0`)
      yield* eventuallyValue("every message on the bus", () =>
        keys.every((key) => consumer.received.some((message) => message.properties.messageId === key)) ? true : undefined, slowly)
      // Spans go out every 200 ms; the export fails at once (nothing listens).
      let failures = 0
      while (failures === 0) {
        failures = (yield* gateway.metric("otel_export_failures_total")) ?? 0
        if (failures === 0) yield* Effect.sleep("250 millis")
      }
      assert.isAbove(failures, 0)
      const warnings = gateway.logs().filter((line) => line.message === "OTLP collector not answering; spans are dropped until it does")
      assert.strictEqual(warnings.length, 1)
      assert.strictEqual(warnings[0]!.level, "WARN")
      const committed = yield* query<{ count: number }>(database, "SELECT count(*)::int AS count FROM messages")
      assert.strictEqual(committed[0]!.count, keys.length)
      gateway.kill("SIGTERM")
      assert.strictEqual(yield* gateway.exited, 0)
    }), { timeout: 180_000 })

  it.live("sampling: at ratio 0 no message trace is exported, yet every message carries an unsampled traceparent", () =>
    Effect.gen(function*() {
      const receiver = yield* startOtlpReceiver(receiverPorts.json)
      const { channel, consumer, gateway, simulator } = yield* startTracedGateway("traces_unsampled", {
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
        OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
        OTEL_SAMPLE_RATIO: "0"
      })
      const posted = Array.from({ length: 5 }, (_, index) => simulator.world.post(channel.id, { text: `unsampled ${index}` }))
      const keys = posted.map((message) => `${channel.id}:${message.id}:0`)
      const delivered = yield* eventuallyValue("every message on the bus", () =>
        keys.every((key) => consumer.received.some((message) => message.properties.messageId === key))
          ? consumer.received
          : undefined, slowly)
      for (const message of delivered) assert.match(header(message) ?? "", /^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/)
      // Whatever the gateway still exports (nothing at ratio 0), no message span is among it.
      yield* Effect.sleep("1 second")
      gateway.kill("SIGTERM")
      assert.strictEqual(yield* gateway.exited, 0)
      const names = new Set(receiver.spans().map((span) => span.name))
      for (const name of ["Ingestion.message", "MessageCache.remember", "EventBus.publish", "BatchWriter.commit"]) {
        assert.isFalse(names.has(name), `${name} exported at ratio 0`)
      }
    }), { timeout: 180_000 })
})
