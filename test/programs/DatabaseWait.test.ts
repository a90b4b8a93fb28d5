import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Logger, Metric } from "effect"
import { TestClock } from "effect/testing"
import { makeDatabaseWait } from "../../src/programs/DatabaseWait.ts"
import * as Metrics from "../../src/services/Metrics.ts"

const counter = Metrics.leasePollFailures.pipe(Metric.withAttributes({ account: "wait-test" }))

describe("DatabaseWait", () => {
  it.effect("warns once per outage, counts every attempt, backs off from the interval to the cap, and says when the database answers", () =>
    Effect.gen(function*() {
      const lines: Array<string> = []
      const logger = Logger.make(({ logLevel, message }) => {
        lines.push(`${logLevel} ${String(Array.isArray(message) ? message[0] : message)}`)
      })
      const observed: Array<boolean> = []
      yield* Effect.gen(function*() {
        const wait = yield* makeDatabaseWait({
          what: "account news",
          consequence: "the account is not taken",
          interval: Duration.seconds(1),
          maxDelay: Duration.seconds(10),
          failures: Metrics.leasePollFailures,
          attributes: { account: "wait-test" },
          observe: (reachable) => Effect.sync(() => void observed.push(reachable))
        })
        const before = (yield* Metric.value(counter)).count
        assert.strictEqual(Duration.toMillis(wait.delay()), 1_000)
        assert.isUndefined(wait.waiting())
        const delays: Array<number> = []
        for (let attempt = 0; attempt < 6; attempt++) {
          yield* wait.failed("reading the lease", { message: "connection refused" })
          delays.push(Duration.toMillis(wait.delay()))
          yield* TestClock.adjust(wait.delay())
        }
        assert.deepStrictEqual(delays, [1_000, 2_000, 4_000, 8_000, 10_000, 10_000])
        assert.strictEqual((yield* Metric.value(counter)).count - before, 6)
        assert.include(wait.waiting() ?? "", "waiting for PostgreSQL since 1970-01-01T00:00:00.000Z (6 failed attempts; last: reading the lease failed: connection refused)")
        yield* wait.answered
        yield* wait.answered
        assert.isUndefined(wait.waiting())
        assert.strictEqual(Duration.toMillis(wait.delay()), 1_000)
      }).pipe(Effect.provide(Logger.layer([logger])))
      // Every attempt's outcome reaches PostgreSQL's tier gauge.
      assert.deepStrictEqual(observed, [false, false, false, false, false, false, true, true])
      assert.deepStrictEqual(lines, [
        "Warn account news: waiting for PostgreSQL (reading the lease failed: connection refused); the account is not taken until it answers, retrying with backoff up to 10s",
        "Info account news: PostgreSQL answers again, after 6 failed attempts over 35 s"
      ])
    }))
})
