/**
 * The update engine against the simulator behaving as Telegram: pushes
 * dropped, duplicated and reordered, gaps, non-final chains, `timeout`,
 * too-long gaps, flood waits and refused channels. Each test ends with exact
 * equality between what the simulator went through and what PostgreSQL holds
 * (every message, every version, every deletion).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Metric } from "effect"
import * as Metrics from "../../src/services/Metrics.ts"
import { TelegramSimulator } from "../../src/simulator/index.ts"
import { query } from "../support/Database.ts"
import { awaitCurrentEquality, awaitExactEquality, awaitStatePts, fastEngine, Ledger, runGateway, storedState } from "./EngineHarness.ts"
import { eventually } from "../support/Eventually.ts"
import { makeSetup, startSource } from "./Harness.ts"

const gapsOf = (channel: number, kind: string) =>
  Metric.value(Metrics.telegramGaps.pipe(Metric.withAttributes({ channel: String(channel), kind }))).pipe(
    Effect.map((state) => state.count)
  )

describe("update engine", () => {
  it.live("one in five pushed batches dropped, two channels posting at once with edits and deletions: nothing lost", () =>
    Effect.gen(function*() {
      const sim = yield* TelegramSimulator.start({ differenceTimeout: 1 })
      const news = sim.world.addChannel({ username: "newsroom", title: "News", kind: "channel" })
      const chat = sim.world.addChannel({ username: "chatroom", title: "Chat", kind: "supergroup" })
      const setup = yield* makeSetup(sim)
      const ledger = new Ledger(sim)
      yield* runGateway(setup, { ...fastEngine, pollInterval: "30 seconds", channels: ["@newsroom", "@chatroom"] })
      yield* eventually("both channels read", () => sim.callCount("updates.GetChannelDifference") >= 2)
      const gapsBefore = yield* gapsOf(news.id, "push")

      sim.faults.pushFaults({ dropRatio: 0.2, seed: 11 })
      yield* Effect.all([news, chat].map((channel) =>
        Effect.gen(function*() {
          for (let i = 1; i <= 150; i++) {
            const id = ledger.post(channel, `${channel.username} post ${i}`)
            if (i % 10 === 0) ledger.edit(channel, id - 3, `${channel.username} post ${i - 3}, edited`)
            if (i % 25 === 0) ledger.delete(channel, [id - 5])
            if (i % 5 === 0) yield* Effect.sleep("10 millis")
          }
        })
      ), { concurrency: "unbounded" })
      // The last push may be the one dropped: only a poll would find it, and the gap rule needs a later push.
      sim.faults.pushFaults({})
      ledger.post(news, "after the storm")
      ledger.post(chat, "after the storm")

      yield* awaitExactEquality(setup, ledger, "60 seconds")
      assert.isAbove(sim.faults.pushesDropped, 20)
      assert.isAbove((yield* gapsOf(news.id, "push")) - gapsBefore, 0, "gaps were detected, not polled away")
    }), { timeout: 120_000 })

  it.live("duplicated and reordered pushes: every update applied once, in pts order", () =>
    Effect.gen(function*() {
      const sim = yield* TelegramSimulator.start({ differenceTimeout: 1 })
      const news = sim.world.addChannel({ username: "newsroom", title: "News", kind: "channel" })
      const setup = yield* makeSetup(sim)
      const ledger = new Ledger(sim)
      yield* runGateway(setup, { ...fastEngine, pollInterval: "30 seconds", channels: ["@newsroom"] })
      yield* eventually("read", () => sim.callCount("updates.GetChannelDifference") >= 1)
      const differencesBefore = sim.callCount("updates.GetChannelDifference")

      sim.faults.pushFaults({ duplicateRatio: 0.3, reorderWindow: 6, seed: 5 })
      for (let i = 1; i <= 120; i++) {
        const id = ledger.post(news, `post ${i}`)
        if (i % 4 === 0) ledger.edit(news, id, `post ${i}, edited`)
        if (i % 15 === 0) ledger.delete(news, [id - 1, id - 2])
      }
      sim.faults.pushFaults({})
      ledger.post(news, "last")

      yield* awaitExactEquality(setup, ledger)
      // Reordering inside the gap hold fills itself: few or no differences were needed.
      assert.isBelow(sim.callCount("updates.GetChannelDifference") - differencesBefore, 20)
    }), { timeout: 60_000 })

  it.live("30 sequential edits of one message with a gap among them: all 30 versions stored, in order", () =>
    Effect.gen(function*() {
      const sim = yield* TelegramSimulator.start({ differenceTimeout: 1 })
      const news = sim.world.addChannel({ username: "newsroom", title: "News", kind: "channel" })
      const setup = yield* makeSetup(sim)
      const ledger = new Ledger(sim)
      yield* runGateway(setup, { ...fastEngine, pollInterval: "30 seconds", channels: ["@newsroom"] })
      yield* eventually("read", () => sim.callCount("updates.GetChannelDifference") >= 1)

      const id = ledger.post(news, "v0")
      for (let i = 1; i <= 30; i++) {
        if (i === 11) sim.faults.skipUpdates(4)
        ledger.edit(news, id, `v${i}`)
      }
      yield* awaitExactEquality(setup, ledger)
      const stored = yield* storedState(setup)
      assert.strictEqual(stored.versions.get(news.id)?.get(id)?.length, 31)
    }), { timeout: 60_000 })

  it.live("catches up a backlog through a non-final difference chain of more than 3 pages at start", () =>
    Effect.gen(function*() {
      const sim = yield* TelegramSimulator.start({ differenceTimeout: 1 })
      const news = sim.world.addChannel({ username: "newsroom", title: "News", kind: "channel" })
      const setup = yield* makeSetup(sim)
      const ledger = new Ledger(sim)
      ledger.post(news, "before the first start")
      yield* Effect.scoped(Effect.gen(function*() {
        yield* runGateway(setup, { ...fastEngine, channels: ["@newsroom"] })
        yield* eventually("first read stored", () => sim.callCount("updates.GetChannelDifference") >= 1)
        yield* awaitStatePts(setup, news.id, 2)
      }))
      // The first start began at "now": what came before is not the engine's to fetch.
      ledger.versions.get(news.id)?.clear()

      for (let i = 1; i <= 350; i++) {
        const id = ledger.post(news, `while down ${i}`)
        if (i % 50 === 0) ledger.edit(news, id - 1, `while down ${i - 1}, edited`)
        if (i % 70 === 0) ledger.delete(news, [id - 2])
      }
      const before = sim.callCount("updates.GetChannelDifference")
      yield* runGateway(setup, { ...fastEngine, channels: ["@newsroom"] })
      yield* awaitExactEquality(setup, ledger)
      assert.isAtLeast(sim.callCount("updates.GetChannelDifference") - before, 4, "pages of 100 until final")
    }), { timeout: 60_000 })

  it.live("a timeout of 300 s does not delay gap recovery: a gap opening inside it is filled at once", () =>
    Effect.gen(function*() {
      const sim = yield* TelegramSimulator.start({ differenceTimeout: 300 })
      const news = sim.world.addChannel({ username: "newsroom", title: "News", kind: "channel" })
      const setup = yield* makeSetup(sim)
      const ledger = new Ledger(sim)
      yield* runGateway(setup, { ...fastEngine, channels: ["@newsroom"] })
      yield* eventually("read", () => sim.callCount("updates.GetChannelDifference") >= 1)
      ledger.post(news, "first")
      yield* awaitExactEquality(setup, ledger)

      sim.faults.skipUpdates(2)
      ledger.post(news, "missed 1")
      ledger.post(news, "missed 2")
      const started = Date.now()
      ledger.post(news, "reveals the gap")
      yield* awaitExactEquality(setup, ledger, "10 seconds")
      assert.isBelow(Date.now() - started, 5_000, "well inside the server's 300 s timeout")
    }), { timeout: 60_000 })

  it.live("CHANNEL_PRIVATE for one channel: it is dropped and named, the other goes on", () =>
    Effect.gen(function*() {
      const sim = yield* TelegramSimulator.start({ differenceTimeout: 1 })
      const news = sim.world.addChannel({ username: "newsroom", title: "News", kind: "channel" })
      const closed = sim.world.addChannel({ username: "closedroom", title: "Closed", kind: "channel" })
      sim.world.setPrivate(closed)
      const setup = yield* makeSetup(sim)
      const ledger = new Ledger(sim)
      const { events, source } = yield* startSource(setup, { ...fastEngine, channels: ["@newsroom", "@closedroom"] })
      yield* eventually("the refusal", () => sim.callCount("messages.GetHistory") >= 2)
      ledger.post(news, "still flowing")
      yield* eventually("the other channel's post", () => events.length === 1)
      const statuses = yield* source.channels
      assert.deepStrictEqual(statuses.map((s) => [s.channel, s.refused]), [["@newsroom", null], ["@closedroom", "CHANNEL_PRIVATE"]])
    }), { timeout: 60_000 })
})

describe("update engine, too-long gaps and flood waits", () => {
  it.live("TooLong after 20,000 posts with edits and deletions in and before the gap, FLOOD_WAIT on getHistory midway: everything recovered", () =>
    Effect.gen(function*() {
      const sim = yield* TelegramSimulator.start({ differenceTimeout: 1, differenceTooLongAfter: 1000 })
      const news = sim.world.addChannel({ username: "newsroom", title: "News", kind: "channel" })
      const setup = yield* makeSetup(sim)
      const ledger = new Ledger(sim)
      const settings = { ...fastEngine, channels: ["@newsroom"], floodSleepThreshold: "1 second", rereadWindow: 50 }
      yield* Effect.scoped(Effect.gen(function*() {
        yield* runGateway(setup, settings)
        yield* eventually("read", () => sim.callCount("updates.GetChannelDifference") >= 1)
        for (let i = 1; i <= 40; i++) ledger.post(news, `before ${i}`)
        yield* awaitExactEquality(setup, ledger)
        yield* awaitStatePts(setup, news.id, 41)
      }))

      // While down: edits and deletions of stored messages, then 20,000 posts, some edited or deleted too.
      ledger.edit(news, 30, "before 30, edited while down")
      ledger.edit(news, 35, "before 35, edited while down")
      ledger.delete(news, [31, 38])
      for (let i = 1; i <= 20_000; i++) {
        const id = ledger.post(news, `gap ${i}`)
        if (i % 1000 === 0) ledger.edit(news, id - 10, `gap ${i - 10}, edited`)
        if (i % 1500 === 0) ledger.delete(news, [id - 20])
      }
      const tooLongBefore = yield* gapsOf(news.id, "too_long")
      const historyCalls = sim.callCount("messages.GetHistory")
      sim.faults.floodWait("messages.GetHistory", 3, 1)
      sim.faults.floodWait("updates.GetChannelDifference", 2, 1)
      // A first page goes through before the flood wait hits: the flood wait falls mid-recovery.
      yield* runGateway(setup, settings)
      yield* awaitCurrentEquality(setup, ledger, "150 seconds")

      assert.strictEqual((yield* gapsOf(news.id, "too_long")) - tooLongBefore, 1)
      assert.isAtLeast(sim.callCount("messages.GetHistory") - historyCalls, 200, "every page of the gap, no cap")
      const flood = yield* query<{ method: string }>(setup.database, "SELECT method FROM telegram_flood_waits ORDER BY method")
      assert.deepStrictEqual(flood.map((row) => row.method), ["messages.GetHistory", "updates.GetChannelDifference"])
    }), { timeout: 240_000 })

  it.live("a FLOOD_WAIT recorded before a restart is honoured after it, and recovery then resumes from the stored state", () =>
    Effect.gen(function*() {
      const sim = yield* TelegramSimulator.start({ differenceTimeout: 1 })
      const news = sim.world.addChannel({ username: "newsroom", title: "News", kind: "channel" })
      const setup = yield* makeSetup(sim)
      const ledger = new Ledger(sim)
      const settings = { ...fastEngine, channels: ["@newsroom"], floodSleepThreshold: "1 second" }
      yield* Effect.scoped(Effect.gen(function*() {
        yield* runGateway(setup, settings)
        yield* eventually("read", () => sim.callCount("updates.GetChannelDifference") >= 1)
        ledger.post(news, "one")
        yield* awaitExactEquality(setup, ledger)
        sim.faults.floodWait("updates.GetChannelDifference", 6, 1)
        const calls = sim.callCount("updates.GetChannelDifference")
        yield* eventually("the poll answered FLOOD_WAIT_6", () => sim.callCount("updates.GetChannelDifference") > calls)
        while ((yield* query(setup.database, "SELECT 1 FROM telegram_flood_waits")).length === 0) yield* Effect.sleep("50 millis")
      }))
      const flooded = yield* query<{ until_ms: number }>(
        setup.database,
        "SELECT (extract(epoch FROM until) * 1000)::float8 AS until_ms FROM telegram_flood_waits WHERE method = 'updates.GetChannelDifference'"
      )
      const until = Number(flooded[0]?.until_ms)
      assert.isAbove(until, Date.now())
      ledger.post(news, "two, while down")
      sim.faults.pushFaults({ dropRatio: 1 })
      ledger.post(news, "three, never pushed")
      const callsBefore = sim.callCount("updates.GetChannelDifference")
      yield* runGateway(setup, settings)
      yield* awaitExactEquality(setup, ledger, "30 seconds")
      const firstCall = sim.calls.filter((call) => call.method === "updates.GetChannelDifference")[callsBefore]
      assert.isAtLeast(firstCall?.at ?? 0, until - 50, "no getChannelDifference before the stored flood wait ended")
    }), { timeout: 60_000 })
})
