/**
 * What the engine says about a channel's freshness: with pushes stopped for
 * the two minutes the issue names, polling alone keeps it within the polling
 * deadline; during a long recovery the channel is reported `recovering`,
 * with its progress, rather than stale, and the warning says so.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Metric } from "effect"
import * as Metrics from "../../src/services/Metrics.ts"
import { TelegramSimulator } from "../../src/simulator/index.ts"
import { awaitExactEquality, awaitStatePts, fastEngine, Ledger, runGateway } from "./EngineHarness.ts"
import { eventually } from "../support/Eventually.ts"
import { captureLogs, makeSetup, startSource } from "./Harness.ts"

describe("update engine freshness", () => {
  it.live("pushes stopped for 2 minutes at 10 posts/s: polling keeps the channel fresh within the deadline, nothing lost", () =>
    Effect.gen(function*() {
      const sim = yield* TelegramSimulator.start({ differenceTimeout: 1 })
      const news = sim.world.addChannel({ username: "newsroom", title: "News", kind: "channel" })
      const setup = yield* makeSetup(sim)
      const ledger = new Ledger(sim)
      yield* runGateway(setup, { ...fastEngine, channels: ["@newsroom"] })
      yield* eventually("read", () => sim.callCount("updates.GetChannelDifference") >= 1)
      const freshness = Metrics.telegramFreshness.pipe(Metric.withAttributes({ channel: String(news.id) }))
      sim.faults.pushFaults({ dropRatio: 1 })
      const started = Date.now()
      let worstFreshness = 0
      let posted = 0
      while (Date.now() - started < 120_000) {
        ledger.post(news, `unpushed ${++posted}`)
        yield* Effect.sleep("100 millis")
        worstFreshness = Math.max(worstFreshness, (yield* Metric.value(freshness)).value)
      }
      yield* awaitExactEquality(setup, ledger, "20 seconds")
      assert.strictEqual(sim.faults.pushesDropped, posted)
      assert.isAtLeast(posted, 900, "about 10 posts/s for 2 minutes (fewer on a loaded machine)")
      assert.isAtMost(worstFreshness, 2.5, "confirmed at least every poll interval (1 s) plus a call")
    }), { timeout: 200_000 })

  it.live("a long too-long recovery is reported as recovering with its progress, not as stale", () =>
    Effect.gen(function*() {
      const sim = yield* TelegramSimulator.start({ differenceTimeout: 1, differenceTooLongAfter: 200 })
      const news = sim.world.addChannel({ username: "slowroom", title: "Slow", kind: "channel" })
      const setup = yield* makeSetup(sim)
      const settings = { ...fastEngine, channels: ["@slowroom"], staleAfter: "1 second" }
      yield* Effect.scoped(Effect.gen(function*() {
        const { events } = yield* startSource(setup, settings)
        yield* eventually("read", () => sim.callCount("updates.GetChannelDifference") >= 1)
        sim.world.post(news, { text: "before" })
        yield* eventually("the first post", () => events.length === 1)
        yield* awaitStatePts(setup, news.id, 2)
      }))
      for (let i = 1; i <= 2000; i++) sim.world.post(news, { text: `gap ${i}` })
      sim.faults.delay("messages.GetHistory", 300)

      const logs = captureLogs()
      const { source } = yield* startSource(setup, settings).pipe(Effect.provide(logs.layer))
      const recovering = Metric.value(Metrics.telegramChannelRecovering.pipe(Metric.withAttributes({ channel: String(news.id) })))
      let status = (yield* source.channels)[0]!
      while (status.state !== "recovering" || (status.recovery?.progress ?? 0) === 0) {
        yield* Effect.sleep("100 millis")
        status = (yield* source.channels)[0]!
      }
      assert.strictEqual(status.recovery?.kind, "too_long")
      assert.strictEqual(status.recovery?.fromId, 1)
      assert.strictEqual(status.recovery?.toId, 2001)
      assert.isAbove(status.recovery?.progress ?? 0, 0)
      assert.isBelow(status.recovery?.progress ?? 1, 1)
      assert.strictEqual((yield* recovering).value, 1)
      // Past staleAfter while recovering: the warning names the recovery, and the channel is not called stale.
      yield* eventually("the warning", () => logs.lines.some((line) => line.includes("behind while recovering")), "20 seconds")
      assert.match(logs.lines.find((line) => line.includes("behind while recovering"))!, /ids up to \d+ of \(1, 2001\] read \(\d+%\)/)
      assert.isFalse(logs.lines.some((line) => line.includes("is stale")))

      // Done: confirmed up to date again.
      let live = false
      while (!live) {
        yield* Effect.sleep("200 millis")
        live = (yield* source.channels)[0]!.state === "live"
      }
      assert.strictEqual((yield* recovering).value, 0)
    }), { timeout: 120_000 })
})
