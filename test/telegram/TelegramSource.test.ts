/**
 * The GramJS TelegramSource end to end: the real client over TCP against the
 * simulator, the registry in a PostgreSQL database per test.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Metric, Runtime } from "effect"
import { Api, helpers } from "telegram"
import type { MessageEvent } from "../../src/domain/Message.ts"
import * as Metrics from "../../src/services/Metrics.ts"
import { FATAL_ERRORS, type FatalError, TelegramSimulator } from "../../src/simulator/index.ts"
import { query } from "../support/Database.ts"
import { eventually } from "../support/Eventually.ts"
import { makeSetup, startSource } from "./Harness.ts"

const texts = (events: ReadonlyArray<MessageEvent>, tag: MessageEvent["_tag"]) =>
  events.flatMap((event) => event._tag === tag && event._tag !== "MessageDeleted" ? [event.message.text] : [])

const counterValue = (metric: Metric.Counter<number>) => Metric.value(metric).pipe(Effect.map((state) => state.count))

describe("GramJsTelegramSource", () => {
  it.live("turns posts, edits and deletions pushed by Telegram into events with their content", () =>
    Effect.gen(function*() {
      const sim = yield* TelegramSimulator.start({ differenceTimeout: 1 })
      const news = sim.world.addChannel({ username: "newsroom", title: "News", kind: "channel" })
      const group = sim.world.addChannel({ username: "traders", title: "Traders", kind: "supergroup" })
      const setup = yield* makeSetup(sim)
      const { events } = yield* startSource(setup, { channels: ["@newsroom", "https://t.me/traders"] })
      yield* eventually("both chats tracked", () => sim.callCount("updates.GetChannelDifference") >= 2)

      const first = sim.world.post(news, {
        text: "BTC long 65000",
        entities: [new Api.MessageEntityBold({ offset: 0, length: 3 })],
        media: new Api.MessageMediaDocument({
          document: new Api.Document({
            id: helpers.returnBigInt(77),
            accessHash: helpers.returnBigInt(0),
            fileReference: Buffer.from([1, 2, 3]),
            date: 0,
            mimeType: "video/mp4",
            size: helpers.returnBigInt(2048),
            dcId: 2,
            attributes: [
              new Api.DocumentAttributeVideo({ duration: 12.5, w: 640, h: 360 }),
              new Api.DocumentAttributeFilename({ fileName: "chart.mp4" })
            ]
          })
        })
      })
      sim.world.post(group, { text: "anyone in?", replyTo: 1 })
      yield* eventually("two new messages", () => texts(events, "MessageCreated").length === 2)
      sim.world.edit(news, first.id, "BTC long 65500")
      sim.world.delete(news, [first.id])
      yield* eventually("the edit and the deletion", () => events.length === 4)

      const [created, reply, edited, deleted] = events
      assert.strictEqual(created?._tag, "MessageCreated")
      if (created?._tag !== "MessageCreated") return
      assert.strictEqual(created.message.channelId, news.id)
      assert.strictEqual(created.message.text, "BTC long 65000")
      assert.deepStrictEqual(created.message.entities.map((entity) => [entity.type, entity.offset, entity.length]), [["bold", 0, 3]])
      assert.deepInclude(created.message.media, { kind: "video", mimeType: "video/mp4", size: 2048, fileName: "chart.mp4", width: 640, height: 360, durationSeconds: 12.5 })
      assert.deepInclude(created.message.sender, { id: news.id, kind: "channel", name: "News" })
      assert.doesNotThrow(() => JSON.stringify(created.message.raw))
      assert.strictEqual((created.message.raw as { _: string })._, "Message")
      assert.isAtLeast(created.receivedAt, Date.now() - 60_000)

      assert.strictEqual(reply?._tag, "MessageCreated")
      if (reply?._tag !== "MessageCreated") return
      assert.strictEqual(reply.message.channelId, group.id)
      assert.strictEqual(reply.message.replyToMessageId, 1)
      assert.deepInclude(reply.message.sender, { kind: "user", name: "Author" })

      assert.strictEqual(edited?._tag, "MessageEdited")
      if (edited?._tag !== "MessageEdited") return
      assert.strictEqual(edited.message.text, "BTC long 65500")
      assert.isNumber(edited.message.editDate)

      assert.strictEqual(deleted?._tag, "MessageDeleted")
      if (deleted?._tag !== "MessageDeleted") return
      assert.deepStrictEqual([deleted.channelId, deleted.messageId], [news.id, first.id])
    }))

  it.live("pushes a worker finds waiting go to ingestion as one source batch, whose commit moves the channel to the last of them", () =>
    Effect.gen(function*() {
      const sim = yield* TelegramSimulator.start({ differenceTimeout: 1 })
      const news = sim.world.addChannel({ username: "newsroom", title: "News", kind: "channel" })
      const setup = yield* makeSetup(sim)
      const { batchSizes, events } = yield* startSource(setup, { channels: ["@newsroom"] })
      yield* eventually("the channel tracked", () => sim.callCount("updates.GetChannelDifference") >= 1)
      const before = batchSizes.length

      // Posted in one turn, they reach the client together (src/simulator/Connection.ts flushes per turn).
      const posts = 200
      for (let i = 0; i < posts; i++) sim.world.post(news, { text: `burst ${i}` })
      yield* eventually("every post", () => texts(events, "MessageCreated").length === posts)

      assert.deepStrictEqual(texts(events, "MessageCreated"), Array.from({ length: posts }, (_, i) => `burst ${i}`))
      const bursts = batchSizes.slice(before).filter((size) => size > 0)
      // One source batch per update before; now at most APPLIED_PER_BATCH (256) updates share one.
      assert.isBelow(bursts.length, posts / 10, `source batches: ${JSON.stringify(bursts)}`)
      assert.isAbove(Math.max(...bursts), 1)
      const newestPts = sim.world.channel(news).pts
      const storedPts = query<{ pts: number }>(setup.database, `SELECT pts FROM telegram_channel_state WHERE channel_id = ${news.id}`).pipe(
        Effect.map((rows) => rows[0]?.pts)
      )
      while ((yield* storedPts) !== newestPts) yield* Effect.sleep("50 millis")
    }))

  it.live("resolves each chat once: a restart reads it from PostgreSQL and catches up what was posted meanwhile", () =>
    Effect.gen(function*() {
      const sim = yield* TelegramSimulator.start({ differenceTimeout: 1 })
      const news = sim.world.addChannel({ username: "newsroom", title: "News", kind: "channel" })
      const setup = yield* makeSetup(sim)

      yield* Effect.scoped(Effect.gen(function*() {
        const { events } = yield* startSource(setup, { channels: ["newsroom"] })
        yield* eventually("tracked", () => sim.callCount("updates.GetChannelDifference") >= 1)
        sim.world.post(news, { text: "before the restart" })
        yield* eventually("the first message", () => events.length === 1)
        // Progress is flushed at shutdown.
      }))
      const rows = yield* query<{ username: string; access_hash: string; pts: number; top_message_id: number }>(
        setup.database,
        "SELECT username, access_hash, pts, top_message_id FROM channels JOIN telegram_channel_state USING (channel_id)"
      )
      assert.deepStrictEqual(rows, [{ username: "newsroom", access_hash: news.accessHash.toString(), pts: 2, top_message_id: 1 }])

      sim.world.post(news, { text: "while down 1" })
      sim.world.post(news, { text: "while down 2" })
      const { events } = yield* startSource(setup, { channels: ["newsroom"] })
      yield* eventually("what was posted while down", () => texts(events, "MessageCreated").length === 2)

      assert.deepStrictEqual(texts(events, "MessageCreated"), ["while down 1", "while down 2"])
      assert.strictEqual(sim.callCount("contacts.ResolveUsername"), 1)
    }))

  it.live("reconnects after the connection drops and recovers through history what was posted meanwhile", () =>
    Effect.gen(function*() {
      const sim = yield* TelegramSimulator.start({ differenceTimeout: 1 })
      const news = sim.world.addChannel({ username: "newsroom", title: "News", kind: "channel" })
      const setup = yield* makeSetup(sim)
      const reconnectsBefore = yield* counterValue(Metrics.telegramReconnects)
      const { events, source } = yield* startSource(setup, { channels: ["newsroom"] })
      yield* eventually("tracked", () => sim.callCount("updates.GetChannelDifference") >= 1)
      sim.world.post(news, { text: "one" })
      yield* eventually("the first message", () => events.length === 1)

      sim.faults.delay("help.GetConfig", 300)
      sim.faults.dropConnections()
      sim.world.post(news, { text: "two (nobody connected)" })
      sim.world.post(news, { text: "three (nobody connected)" })
      yield* eventually("the missed messages", () => texts(events, "MessageCreated").length === 3)
      sim.world.post(news, { text: "four" })
      yield* eventually("live again", () => texts(events, "MessageCreated").includes("four"))

      assert.deepStrictEqual(texts(events, "MessageCreated"), ["one", "two (nobody connected)", "three (nobody connected)", "four"])
      assert.isAtLeast(sim.connectionCount(), 2)
      assert.strictEqual(yield* source.connectionState, "connected")
      assert.isAtLeast((yield* counterValue(Metrics.telegramReconnects)) - reconnectsBefore, 1)
      assert.strictEqual((yield* Metric.value(Metrics.telegramConnected)).value, 1)
    }))

  it.live("sleeps through a short FLOOD_WAIT and goes on", () =>
    Effect.gen(function*() {
      const sim = yield* TelegramSimulator.start({ differenceTimeout: 1 })
      const news = sim.world.addChannel({ username: "newsroom", title: "News", kind: "channel" })
      const setup = yield* makeSetup(sim)
      const floods = Metrics.telegramFloodWaits.pipe(Metric.withAttributes({ method: "contacts.ResolveUsername" }))
      const before = yield* counterValue(floods)
      sim.faults.floodWait("contacts.ResolveUsername", 1)
      const started = Date.now()

      const { events } = yield* startSource(setup, { channels: ["newsroom"], floodSleepThreshold: "5 seconds" })
      yield* eventually("tracked", () => sim.callCount("updates.GetChannelDifference") >= 1)
      sim.world.post(news, { text: "after the wait" })
      yield* eventually("the message", () => events.length === 1)

      assert.isAtLeast(Date.now() - started, 1000)
      assert.strictEqual(sim.callCount("contacts.ResolveUsername"), 2)
      assert.strictEqual((yield* counterValue(floods)) - before, 1)
    }))

  it.live("schedules a long FLOOD_WAIT for later, counted, while pushed updates keep flowing", () =>
    Effect.gen(function*() {
      const sim = yield* TelegramSimulator.start({ differenceTimeout: 0 })
      const news = sim.world.addChannel({ username: "newsroom", title: "News", kind: "channel" })
      const setup = yield* makeSetup(sim)
      const floods = Metrics.telegramFloodWaits.pipe(Metric.withAttributes({ method: "updates.GetChannelDifference" }))
      const before = yield* counterValue(floods)
      const { events, source } = yield* startSource(setup, {
        channels: ["newsroom"],
        floodSleepThreshold: "1 second",
        pollInterval: "200 millis"
      })
      yield* eventually("tracked", () => sim.callCount("updates.GetChannelDifference") >= 1)
      const polls = sim.callCount("updates.GetChannelDifference")
      sim.faults.floodWait("updates.GetChannelDifference", 3)
      yield* eventually("the next poll, answered FLOOD_WAIT_3", () => sim.callCount("updates.GetChannelDifference") > polls)
      const floodedAt = Date.now()

      sim.world.post(news, { text: "pushed during the wait" })
      yield* eventually("the pushed message", () => events.length === 1)
      assert.isBelow(Date.now() - floodedAt, 2500, "pushed updates are not held up by the scheduled call")
      assert.strictEqual(yield* source.connectionState, "connected")
      const callsDuringWait = sim.callCount("updates.GetChannelDifference")
      yield* Effect.sleep("1 second")
      assert.strictEqual(sim.callCount("updates.GetChannelDifference"), callsDuringWait, "no call to the method before the wait is over")

      yield* eventually("polling again after the wait", () => sim.callCount("updates.GetChannelDifference") > callsDuringWait, "10 seconds")
      assert.isAtLeast(Date.now() - floodedAt, 2500)
      assert.strictEqual((yield* counterValue(floods)) - before, 1)
      const persisted = yield* query<{ method: string }>(setup.database, "SELECT method FROM telegram_flood_waits")
      assert.deepStrictEqual(persisted, [{ method: "updates.GetChannelDifference" }])
    }))

  for (const reason of Object.keys(FATAL_ERRORS) as Array<FatalError>) {
    it.live(`ends the stream with TelegramFatal ${reason} and its exit code, without retrying`, () =>
      Effect.gen(function*() {
        const sim = yield* TelegramSimulator.start({ differenceTimeout: 1 })
        sim.world.addChannel({ username: "newsroom", title: "News", kind: "channel" })
        const setup = yield* makeSetup(sim)
        const { ended, source } = yield* startSource(setup, { channels: ["newsroom"] })
        yield* eventually("tracked", () => sim.callCount("updates.GetChannelDifference") >= 1)

        sim.faults.fatal(reason)
        sim.faults.dropConnections()
        const exit = yield* Fiber.await(ended).pipe(Effect.timeout("15 seconds"))
        const connectionsAtEnd = sim.connectionCount()
        yield* Effect.sleep("1 second")

        assert.isTrue(Exit.isFailure(exit))
        const error = Exit.isFailure(exit) ? exit.cause.reasons.find((r) => r._tag === "Fail") : undefined
        const fatal = error?._tag === "Fail" ? error.error as { _tag: string; reason: string; message: string } : undefined
        assert.strictEqual(fatal?._tag, "TelegramFatal")
        assert.strictEqual(fatal?.reason, reason)
        assert.include(fatal?.message, "telegram-gateway login")
        assert.strictEqual((fatal as unknown as Record<string, number>)[Runtime.errorExitCode], { AUTH_KEY_UNREGISTERED: 80, SESSION_REVOKED: 81, USER_DEACTIVATED: 82, AUTH_KEY_DUPLICATED: 83 }[reason])
        assert.strictEqual(sim.connectionCount(), connectionsAtEnd, "no reconnection after a fatal error")
        assert.strictEqual(yield* source.connectionState, "failed")
      }))
  }
})
