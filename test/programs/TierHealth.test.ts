import { assert, describe, it } from "@effect/vitest"
import { Effect, Metric } from "effect"
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
})
