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
import { awaitExactEquality, Ledger, runGateway, storedState } from "./EngineHarness.ts"
import { eventually, makeSetup, startSource } from "./Harness.ts"

const gapsOf = (channel: number, kind: string) =>
  Metric.value(Metrics.telegramGaps.pipe(Metric.withAttributes({ channel: String(channel), kind }))).pipe(
    Effect.map((state) => state.count)
  )

const fast = { pollInterval: "1 second", gapHold: "300 millis", stateFlushInterval: "200 millis" }

describe("update engine", () => {
  it.live("one in five pushed batches dropped, two channels posting at once with edits and deletions: nothing lost", () =>
    Effect.gen(function*() {
      const sim = yield* TelegramSimulator.start({ differenceTimeout: 1 })
      const news = sim.world.addChannel({ username: "newsroom", title: "News", kind: "channel" })
      const chat = sim.world.addChannel({ username: "chatroom", title: "Chat", kind: "supergroup" })
      const setup = yield* makeSetup(sim)
      const ledger = new Ledger(sim)
      yield* runGateway(setup, { ...fast, pollInterval: "30 seconds", channels: ["@newsroom", "@chatroom"] })
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
      yield* runGateway(setup, { ...fast, pollInterval: "30 seconds", channels: ["@newsroom"] })
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
      yield* runGateway(setup, { ...fast, pollInterval: "30 seconds", channels: ["@newsroom"] })
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
        yield* runGateway(setup, { ...fast, channels: ["@newsroom"] })
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
      yield* runGateway(setup, { ...fast, channels: ["@newsroom"] })
      yield* awaitExactEquality(setup, ledger)
      assert.isAtLeast(sim.callCount("updates.GetChannelDifference") - before, 4, "pages of 100 until final")
    }), { timeout: 60_000 })

  it.live("a timeout of 300 s does not delay gap recovery: a gap opening inside it is filled at once", () =>
    Effect.gen(function*() {
      const sim = yield* TelegramSimulator.start({ differenceTimeout: 300 })
      const news = sim.world.addChannel({ username: "newsroom", title: "News", kind: "channel" })
      const setup = yield* makeSetup(sim)
      const ledger = new Ledger(sim)
      yield* runGateway(setup, { ...fast, channels: ["@newsroom"] })
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

  it.live("pushes stopped entirely: polling keeps every channel fresh within the deadline, nothing lost", () =>
    Effect.gen(function*() {
      const sim = yield* TelegramSimulator.start({ differenceTimeout: 1 })
      const news = sim.world.addChannel({ username: "newsroom", title: "News", kind: "channel" })
      const setup = yield* makeSetup(sim)
      const ledger = new Ledger(sim)
      yield* runGateway(setup, { ...fast, channels: ["@newsroom"] })
      yield* eventually("read", () => sim.callCount("updates.GetChannelDifference") >= 1)
      const freshness = Metrics.telegramFreshness.pipe(Metric.withAttributes({ channel: String(news.id) }))
      sim.faults.pushFaults({ dropRatio: 1 })
      let worstFreshness = 0
      for (let i = 1; i <= 150; i++) {
        ledger.post(news, `unpushed ${i}`)
        yield* Effect.sleep("100 millis")
        worstFreshness = Math.max(worstFreshness, (yield* Metric.value(freshness)).value)
      }
      yield* awaitExactEquality(setup, ledger, "10 seconds")
      assert.strictEqual(sim.faults.pushesDropped, 150)
      assert.isAtMost(worstFreshness, 2.5, "confirmed at least every poll interval (1 s) plus a call")
    }), { timeout: 60_000 })

  it.live("CHANNEL_PRIVATE for one channel: it is dropped and named, the other goes on", () =>
    Effect.gen(function*() {
      const sim = yield* TelegramSimulator.start({ differenceTimeout: 1 })
      const news = sim.world.addChannel({ username: "newsroom", title: "News", kind: "channel" })
      const closed = sim.world.addChannel({ username: "closedroom", title: "Closed", kind: "channel" })
      sim.world.setPrivate(closed)
      const setup = yield* makeSetup(sim)
      const ledger = new Ledger(sim)
      const { events, source } = yield* startSource(setup, { ...fast, channels: ["@newsroom", "@closedroom"] })
      yield* eventually("the refusal", () => sim.callCount("messages.GetHistory") >= 2)
      ledger.post(news, "still flowing")
      yield* eventually("the other channel's post", () => events.length === 1)
      const statuses = yield* source.channels
      assert.deepStrictEqual(statuses.map((s) => [s.channel, s.refused]), [["@newsroom", null], ["@closedroom", "CHANNEL_PRIVATE"]])
    }), { timeout: 60_000 })
})

/** Waits until the engine stored `pts` for the channel. */
export const awaitStatePts = (setup: Parameters<typeof storedState>[0], channelId: number, pts: number) =>
  Effect.gen(function*() {
    while (true) {
      const rows = yield* query<{ pts: number }>(setup.database, `SELECT pts FROM telegram_channel_state WHERE channel_id = ${channelId}`)
      if ((rows[0]?.pts ?? 0) >= pts) return
      yield* Effect.sleep("100 millis")
    }
  }).pipe(Effect.timeout("15 seconds"))
