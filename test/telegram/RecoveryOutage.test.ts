/**
 * A too-long recovery while PostgreSQL is unreachable: the re-read window
 * (what is stored of the messages before the gap) cannot be read, and
 * without it the edits and deletions the gap swallowed cannot be found. The
 * engine retries the read until PostgreSQL answers, so they are recovered:
 * exact equality afterwards. PostgreSQL is cut with a TCP proxy in front of
 * PgBouncer, as a stopped server looks to the gateway.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Metric, Redacted } from "effect"
import * as Metrics from "../../src/services/Metrics.ts"
import { TelegramSimulator } from "../../src/simulator/index.ts"
import { applicationServer, urlVia } from "../support/Database.ts"
import { makeTcpProxy } from "../support/TcpProxy.ts"
import { awaitExactEquality, awaitStatePts, fastEngine, Ledger, runGateway } from "./EngineHarness.ts"
import { eventually } from "../support/Eventually.ts"
import { makeSetup } from "./Harness.ts"

describe("update engine, too-long recovery while PostgreSQL is down", () => {
  it.live("the re-read window waits for PostgreSQL instead of being skipped: edits and deletions before the gap are recovered", () =>
    Effect.gen(function*() {
      const sim = yield* TelegramSimulator.start({ differenceTimeout: 1, differenceTooLongAfter: 300 })
      const news = sim.world.addChannel({ username: "outagenews", title: "Outage", kind: "channel" })
      const setup = yield* makeSetup(sim)
      const proxy = yield* makeTcpProxy(applicationServer)
      const viaProxy = Redacted.value(urlVia(setup.database, `127.0.0.1:${proxy.port}`))
      const ledger = new Ledger(sim)
      const settings = { ...fastEngine, channels: ["@outagenews"], rereadWindow: 50 }
      yield* Effect.scoped(Effect.gen(function*() {
        yield* runGateway(setup, settings, viaProxy)
        yield* eventually("read", () => sim.callCount("updates.GetChannelDifference") >= 1)
        for (let i = 1; i <= 40; i++) ledger.post(news, `before ${i}`)
        yield* awaitExactEquality(setup, ledger)
        yield* awaitStatePts(setup, news.id, 41)
      }))

      // While down: stored messages edited and deleted, then a gap too long for a difference.
      ledger.edit(news, 30, "before 30, edited while down")
      ledger.edit(news, 35, "before 35, edited while down")
      ledger.delete(news, [31, 38])
      for (let i = 1; i <= 1000; i++) ledger.post(news, `gap ${i}`)

      // History pages come slowly, so PostgreSQL is cut while the gap is paged in, before the window is read.
      sim.faults.delay("messages.GetHistory", 150)
      const failures = Metric.value(Metrics.telegramStateReadFailures).pipe(Effect.map((state) => state.count))
      const failuresBefore = yield* failures
      const historyBefore = sim.callCount("messages.GetHistory")
      yield* runGateway(setup, settings, viaProxy)
      yield* eventually("the recovery paging history", () => sim.callCount("messages.GetHistory") > historyBefore, "30 seconds")
      yield* proxy.cut
      while ((yield* failures) === failuresBefore) yield* Effect.sleep("100 millis")
      yield* Effect.sleep("3 seconds")
      yield* proxy.restore

      yield* awaitExactEquality(setup, ledger, "60 seconds")
      assert.isAbove((yield* failures) - failuresBefore, 1, "the window's read failed while PostgreSQL was cut, and was retried")
    }), { timeout: 120_000 })
})
