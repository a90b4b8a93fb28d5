import { assert, describe, it } from "@effect/vitest"
import { Cause, Clock, Data, Effect, Exit, Fiber, Schedule } from "effect"
import { TestClock } from "effect/testing"
import { retryAfterFailure } from "../../src/domain/RetryAfterFailure.ts"

class Flaky extends Data.TaggedError("Flaky")<{ readonly attempt: number }> {}

/** An effect that fails its first `failures` attempts, recording when each attempt ran (TestClock ms). */
const flaky = (failures: number) => {
  const attempts: Array<number> = []
  const effect = Clock.currentTimeMillis.pipe(
    Effect.flatMap((now) => {
      attempts.push(now)
      return attempts.length <= failures ? Effect.fail(new Flaky({ attempt: attempts.length })) : Effect.succeed(attempts.length)
    })
  )
  return { attempts, effect }
}

/** Runs `effect` to its end, moving the TestClock on so that every delay elapses. */
const settle = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.forkChild(effect)
    yield* TestClock.adjust("10 seconds")
    return yield* Fiber.await(fiber)
  })

/** A 20, 40 ms backoff whose running state is counted each time a retry builds it. */
const countedBackoff = () => {
  let built = 0
  const backoff = Schedule.exponential("20 millis").pipe(Schedule.upTo({ times: 2 }))
  const schedule = Schedule.fromStep(Effect.suspend(() => {
    built++
    return Schedule.toStep(backoff)
  }))
  return { schedule, built: () => built }
}

describe("retryAfterFailure", () => {
  it.effect("does not build the retry when the first attempt succeeds (Effect.retry does)", () =>
    Effect.gen(function*() {
      const ours = countedBackoff()
      assert.deepStrictEqual(yield* settle(flaky(0).effect.pipe(retryAfterFailure(ours.schedule))), Exit.succeed(1))
      assert.strictEqual(ours.built(), 0)

      const effects = countedBackoff()
      assert.deepStrictEqual(yield* settle(flaky(0).effect.pipe(Effect.retry(effects.schedule))), Exit.succeed(1))
      assert.strictEqual(effects.built(), 1)
    }))

  it.effect("makes the same attempts at the same times as Effect.retry, and ends the same way", () =>
    Effect.gen(function*() {
      for (const failures of [1, 2, 3, 5]) {
        const ours = flaky(failures)
        const theirs = flaky(failures)
        const start = yield* Clock.currentTimeMillis
        const oursExit = yield* settle(ours.effect.pipe(retryAfterFailure(countedBackoff().schedule)))
        const middle = yield* Clock.currentTimeMillis
        const theirsExit = yield* settle(theirs.effect.pipe(Effect.retry(countedBackoff().schedule)))
        assert.deepStrictEqual(oursExit, theirsExit, `${failures} failure(s)`)
        assert.deepStrictEqual(
          ours.attempts.map((at) => at - start),
          theirs.attempts.map((at) => at - middle),
          `${failures} failure(s)`
        )
      }
      // Two failures are retried (20 then 40 ms); three exhaust the policy with the last error.
      const twice = flaky(2)
      const start = yield* Clock.currentTimeMillis
      assert.deepStrictEqual(yield* settle(twice.effect.pipe(retryAfterFailure(countedBackoff().schedule))), Exit.succeed(3))
      assert.deepStrictEqual(twice.attempts.map((at) => at - start), [0, 20, 60])
      assert.deepStrictEqual(
        yield* settle(flaky(3).effect.pipe(retryAfterFailure(countedBackoff().schedule))),
        Exit.fail(new Flaky({ attempt: 3 }))
      )
    }))

  it.effect("takes Effect.retry's options: times, and a while that stops at the first error it refuses", () =>
    Effect.gen(function*() {
      const retried = flaky(2)
      assert.deepStrictEqual(yield* settle(retried.effect.pipe(retryAfterFailure({ times: 2 }))), Exit.succeed(3))
      assert.strictEqual(retried.attempts.length, 3)

      const refused = flaky(5)
      const exit = yield* settle(
        refused.effect.pipe(retryAfterFailure({ times: 5, while: (error: Flaky) => error.attempt < 2 }))
      )
      assert.deepStrictEqual(exit, Exit.fail(new Flaky({ attempt: 2 })))
      assert.strictEqual(refused.attempts.length, 2)
    }))

  it.effect("passes a defect through untried, as Effect.retry does", () =>
    Effect.gen(function*() {
      let attempts = 0
      const ours = countedBackoff()
      const exit = yield* settle(
        Effect.sync(() => attempts++).pipe(Effect.andThen(Effect.die("boom")), retryAfterFailure(ours.schedule))
      )
      assert.isTrue(Exit.isFailure(exit) && Cause.hasDies(exit.cause))
      assert.strictEqual(attempts, 1)
      assert.strictEqual(ours.built(), 0)
    }))
})
