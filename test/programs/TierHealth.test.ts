import { assert, describe, it } from "@effect/vitest"
import { Effect, Logger, Metric } from "effect"
import { TestClock } from "effect/testing"
import { makeTierHealth } from "../../src/programs/TierHealth.ts"
import * as Metrics from "../../src/services/Metrics.ts"

const gauge = Metrics.tierUp.pipe(Metric.withAttributes({ tier: "redis" }))

describe("TierHealth", () => {
  it.effect("an attempt begun before the outage cannot end it: one warning per outage, not a flap", () =>
    Effect.gen(function*() {
      let recoveries = 0
      const health = yield* makeTierHealth({
        tier: "redis",
        failures: Metrics.redisFailures,
        downMessage: "down",
        upMessage: "up",
        onRecovered: Effect.sync(() => void recoveries++)
      })
      const before = health.began()
      yield* health.failed({ message: "connection refused" }, 3)
      assert.isFalse(health.isUp())
      // A batch sent before the failure is confirmed late: the tier stays down.
      yield* health.succeeded(before)
      assert.isFalse(health.isUp())
      assert.strictEqual((yield* Metric.value(gauge)).value, 0)
      // An attempt begun during the outage that succeeds ends it, once.
      const during = health.began()
      yield* health.succeeded(during)
      yield* health.succeeded(during)
      assert.isTrue(health.isUp())
      assert.strictEqual(recoveries, 1)
      assert.strictEqual((yield* Metric.value(gauge)).value, 1)
    }))

  it.effect("a relapse within 30 s of recovering is the same incident: no second warning, the gauge still drops", () =>
    Effect.gen(function*() {
      const warnings: Array<string> = []
      const logger = Logger.make(({ logLevel, message }) => {
        if (logLevel === "Warn") warnings.push(String(Array.isArray(message) ? message[0] : message))
      })
      yield* Effect.gen(function*() {
        const health = yield* makeTierHealth({
          tier: "redis",
          failures: Metrics.redisFailures,
          downMessage: "down",
          upMessage: "up"
        })
        yield* health.failed({ message: "refused" })
        yield* health.succeeded(health.began())
        yield* TestClock.adjust("10 seconds")
        yield* health.failed({ message: "timeout" })
        assert.strictEqual((yield* Metric.value(gauge)).value, 0)
        yield* health.succeeded(health.began())
        yield* TestClock.adjust("31 seconds")
        yield* health.failed({ message: "refused again" })
      }).pipe(Effect.provide(Logger.layer([logger])))
      assert.deepStrictEqual(warnings, ["down", "down"])
    }))

  it.effect("another loop's view counts too: the gauge says down while either the tier's own attempts or the other loop fail, with no warning from the observer", () =>
    Effect.gen(function*() {
      const warnings: Array<string> = []
      const logger = Logger.make(({ logLevel, message }) => {
        if (logLevel === "Warn") warnings.push(String(Array.isArray(message) ? message[0] : message))
      })
      const failures = Metrics.redisFailures
      yield* Effect.gen(function*() {
        const health = yield* makeTierHealth({ tier: "redis", failures, downMessage: "down", upMessage: "up" })
        const counted = (yield* Metric.value(failures)).count
        // Nothing written yet, but a standby's lease read fails: the gauge must not say up.
        yield* health.observed(false)
        assert.strictEqual((yield* Metric.value(gauge)).value, 0)
        assert.isTrue(health.isUp(), "the tier's own attempts have not failed")
        yield* health.succeeded(health.began())
        assert.strictEqual((yield* Metric.value(gauge)).value, 0, "still down while the other loop fails")
        yield* health.observed(true)
        assert.strictEqual((yield* Metric.value(gauge)).value, 1)
        // The tier's own outage: its warning and counter, whatever the observer saw first.
        yield* health.observed(false)
        yield* health.failed({ message: "refused" })
        yield* health.observed(true)
        assert.strictEqual((yield* Metric.value(gauge)).value, 0, "down until the tier's own attempt succeeds")
        yield* health.succeeded(health.began())
        assert.strictEqual((yield* Metric.value(gauge)).value, 1)
        assert.strictEqual((yield* Metric.value(failures)).count - counted, 1)
      }).pipe(Effect.provide(Logger.layer([logger])))
      assert.deepStrictEqual(warnings, ["down"])
    }))
})
