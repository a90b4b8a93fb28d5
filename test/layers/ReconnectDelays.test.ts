/**
 * How long each tier's client waits before it tries to reconnect, in
 * milliseconds of test time: the RabbitMQ session's schedule driven by the
 * TestClock, and Redis's retry strategy at the ends of its jitter. The
 * reconnections themselves, against real servers, are in RabbitEventBus.test.ts,
 * RedisMessageCache.test.ts and test/faults/.
 */
import { assert, describe, it } from "@effect/vitest"
import { Clock, Duration, Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"
import { reconnectSchedule } from "../../src/layers/RabbitEventBus.ts"
import { reconnectDelayMs } from "../../src/layers/RedisMessageCache.ts"
import { BusUnavailable } from "../../src/services/EventBus.ts"

describe("reconnect delays", () => {
  it.effect("RabbitMQ: from 200 ms, doubling, jittered by at most a fifth, never past rabbitmq.reconnectMaxDelay", () =>
    Effect.gen(function*() {
      const attemptsAt: Array<number> = []
      const connect = Clock.currentTimeMillis.pipe(
        Effect.flatMap((now) => {
          attemptsAt.push(now)
          return Effect.fail(new BusUnavailable({ operation: "connect", cause: "connection refused" }))
        })
      )
      const fiber = yield* connect.pipe(Effect.retry(reconnectSchedule(Duration.seconds(2))), Effect.forkChild)
      for (let step = 0; step < 300; step++) {
        yield* TestClock.adjust("100 millis")
        yield* Effect.yieldNow
      }
      yield* Fiber.interrupt(fiber)
      // Jittered delays are fractional milliseconds: the difference of two wake-up times is rounded to
      // the microsecond, so a capped 2,000 ms delay is not seen as 1999.999999999999 (seen in CI).
      const delays = attemptsAt.slice(1).map((at, index) => Math.round((at - attemptsAt[index]!) * 1000) / 1000)
      assert.isAbove(delays.length, 12, "30 s of outage: an attempt at least every 2.4 s")
      // Time moves in 100 ms steps here, so each delay is seen rounded up to the next step.
      const expected = [200, 400, 800, 1600]
      expected.forEach((base, index) => {
        assert.isAtLeast(delays[index]!, base * 0.8, `attempt ${index + 2}`)
        assert.isAtMost(delays[index]!, base * 1.2 + 100, `attempt ${index + 2}`)
      })
      for (const delay of delays.slice(4)) assert.isAtMost(delay, 2_000 + 100)
      for (const delay of delays.slice(5)) assert.isAtLeast(delay, 2_000, "capped, not reset")
    }))

  it("Redis: 100 ms doubling to 2 s (0.5 s with sentinels), plus up to 100 ms of jitter", () => {
    assert.deepStrictEqual([1, 2, 3, 4, 5, 6, 40].map((attempt) => reconnectDelayMs(attempt, false, 0)), [100, 200, 400, 800, 1600, 2000, 2000])
    assert.deepStrictEqual([1, 2, 3, 4, 40].map((attempt) => reconnectDelayMs(attempt, true, 0)), [100, 200, 400, 500, 500])
    assert.strictEqual(reconnectDelayMs(1, false, 0.999), 199)
    assert.strictEqual(reconnectDelayMs(40, false, 0.999), 2099)
  })
})
