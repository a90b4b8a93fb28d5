/**
 * The whole gateway, end to end: the Telegram simulator posts, edits and
 * deletes over MTProto; the real GramJS source receives; the ingestion
 * program writes Redis, RabbitMQ and PostgreSQL. Then `telegram-gateway run`
 * as a real process: its exit codes for a revoked session and a missing file.
 */
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Effect, Layer, Option, PubSub, Redacted } from "effect"
import { eventKey, type MessageEvent } from "../../src/domain/Message.ts"
import { writeSession } from "../../src/layers/SessionFile.ts"
import * as Gateway from "../../src/main/Daemon.ts"
import { receive } from "../../src/programs/Gateway.ts"
import type { IngestProgress } from "../../src/programs/IngestProgress.ts"
import { Ingestion } from "../../src/programs/Ingestion.ts"
import { MessageCache } from "../../src/services/MessageCache.ts"
import { MessageStore } from "../../src/services/MessageStore.ts"
import { TelegramSimulator } from "../../src/simulator/index.ts"
import { makeTestDatabase, query } from "../support/Database.ts"
import { runToExit, simulatorEnv } from "../support/GatewayProcess.ts"
import { makeTestConsumer, testConfig, uniqueName } from "../support/TestGateway.ts"
import { makeSessionDirectory } from "../telegram/Harness.ts"

/** Waits until `count` events have gone through cache and bus and been committed; returns them. */
const collectSettled = (subscription: PubSub.Subscription<IngestProgress>, count: number) =>
  Effect.gen(function*() {
    const hot: Array<MessageEvent> = []
    const committed = new Set<string>()
    while (hot.length < count || committed.size < count) {
      const progress = yield* PubSub.take(subscription)
      if (progress._tag === "HotPathDone") hot.push(progress.event)
      else for (const event of progress.events) committed.add(eventKey(event))
    }
    return hot.filter((event) => committed.has(eventKey(event)))
  })

/** Runs `telegram-gateway run` with `env` to its end. */
const runGateway = (env: Record<string, string>) => runToExit({ env, timeout: "60 seconds" })

describe("Gateway end to end", () => {
  it.live("delivers posts, edits and deletions from Telegram to PostgreSQL, Redis and RabbitMQ", () =>
    Effect.gen(function*() {
      const simulator = yield* TelegramSimulator.start()
      const channel = simulator.world.addChannel({ username: "e2e_signals", title: "E2E Signals", kind: "channel" })
      const sessionFile = yield* makeSessionDirectory
      yield* writeSession(sessionFile, Redacted.make(simulator.sessionString))
      const database = yield* makeTestDatabase("e2e")
      const exchange = uniqueName("e2e.messages")
      const consumer = yield* makeTestConsumer(exchange)

      // The test's tiers first, with the simulator's Telegram settings behind them.
      const config = ConfigProvider.layerAdd(ConfigProvider.fromUnknown({
          telegram: {
            apiId: 1,
            apiHash: "simulator",
            sessionFile,
            channels: ["@e2e_signals"],
            dcId: simulator.dcId,
            dcAddress: simulator.host,
            dcPort: simulator.port
          }
        })).pipe(
          Layer.provide(
            testConfig({ databaseUrl: Redacted.value(database.url), exchange, keyPrefix: `${uniqueName("tge2e")}:` })
          )
        )
      yield* Effect.gen(function*() {
        const ingestion = yield* Ingestion
        const progress = yield* ingestion.progress
        yield* receive.pipe(Effect.provide(Gateway.telegram), Effect.forkScoped)
        yield* Effect.sleep("1 second") // connected, channel resolved

        const posted = simulator.world.post(channel.id, { text: "#BTCUSDT LONG\nEntry: 64000\nStop: 63000" })
        const [created] = yield* collectSettled(progress, 1)
        simulator.world.edit(channel.id, posted.id, "#BTCUSDT LONG\nEntry: 64000\nStop: 63500 (moved)")
        const [edited] = yield* collectSettled(progress, 1)
        simulator.world.delete(channel.id, [posted.id])
        const [deleted] = yield* collectSettled(progress, 1)
        assert.deepStrictEqual([created?._tag, edited?._tag, deleted?._tag], [
          "MessageCreated",
          "MessageEdited",
          "MessageDeleted"
        ])

        const versions = yield* (yield* MessageStore).versions(channel.id as never, posted.id as never)
        assert.deepStrictEqual(versions.map((version) => version.message.text), [
          "#BTCUSDT LONG\nEntry: 64000\nStop: 63000",
          "#BTCUSDT LONG\nEntry: 64000\nStop: 63500 (moved)"
        ])
        assert.isTrue(versions.every((version) => version.deletedAt !== null), "the deletion marks every version")

        const cache = yield* MessageCache
        for (const event of [created!, edited!, deleted!]) {
          assert.isTrue(Option.isSome(yield* cache.get(eventKey(event))), `${eventKey(event)} is cached`)
        }
        yield* Effect.sleep("300 millis")
        assert.deepStrictEqual(
          consumer.received.map((message) => message.properties.messageId),
          [created!, edited!, deleted!].map(eventKey)
        )
      }).pipe(Effect.provide(Gateway.ingestion), Effect.provide(config))

      const rows = yield* query<{ count: number }>(database, "SELECT count(*)::int AS count FROM messages")
      assert.strictEqual(rows[0]?.count, 2)
    }), { timeout: 60_000 })

  it.live("exits with the session's code and tells the operator what to do when Telegram revokes the session", () =>
    Effect.gen(function*() {
      const simulator = yield* TelegramSimulator.start()
      simulator.world.addChannel({ username: "revoked_chan", title: "Revoked", kind: "channel" })
      simulator.faults.fatal("SESSION_REVOKED")
      const sessionFile = yield* makeSessionDirectory
      yield* writeSession(sessionFile, Redacted.make(simulator.sessionString))
      const database = yield* makeTestDatabase("e2e_revoked")

      const { code, output } = yield* runGateway({
        DATABASE_URL: Redacted.value(database.url),
        DATABASE_MIGRATION_URL: Redacted.value(database.migrationUrl),
        ...simulatorEnv(simulator, sessionFile, "@revoked_chan"),
        REDIS_KEY_PREFIX: `${uniqueName("tge2e")}:`,
        RABBITMQ_EXCHANGE: uniqueName("e2e.revoked")
      })
      assert.strictEqual(code, 81, output)
      assert.include(output, "SESSION_REVOKED")
      assert.include(output, "telegram-gateway login")
      assert.notInclude(output, simulator.sessionString)
    }), { timeout: 90_000 })

  it.live("exits 66 with first-time setup advice when the session file is missing", () =>
    Effect.gen(function*() {
      const { code, output } = yield* runGateway({
        TELEGRAM_API_ID: "1",
        TELEGRAM_API_HASH: "x",
        TELEGRAM_SESSION_FILE: "/nonexistent/telegram-gateway/telegram.session",
        TELEGRAM_CHANNELS: "@anything_here",
        RABBITMQ_EXCHANGE: uniqueName("e2e.missing")
      })
      assert.strictEqual(code, 66, output)
      assert.include(
        output,
        "session file not found at /nonexistent/telegram-gateway/telegram.session: first-time setup required, run 'telegram-gateway login'"
      )
    }), { timeout: 90_000 })

  it.live("exits 78 naming the key when the configuration is invalid", () =>
    Effect.gen(function*() {
      const { code, output } = yield* runGateway({ INGEST_BATCH_SIZE: "many" })
      assert.strictEqual(code, 78, output)
      assert.include(output, "INGEST_BATCH_SIZE (ingest.batchSize in the config file)")
    }), { timeout: 60_000 })
})
