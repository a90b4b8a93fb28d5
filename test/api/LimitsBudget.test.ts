/**
 * Each key's budget of search and count time (Limits, `api.expensive.budget`),
 * on the TestClock: a query is charged the time it took, and a key in debt is
 * refused, with the wait its debt needs, until it has earned the time back;
 * and what the defaults let a flooding key run.
 */
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Effect, Fiber, Layer, type Result } from "effect"
import { TestClock } from "effect/testing"
import type { RateLimited, Unavailable } from "../../src/programs/api/Errors.ts"
import { Limits } from "../../src/programs/api/Limits.ts"

/** 100 ms of query time earned per second, at most 1 s ahead; refusals answered after `refusalDelay`. */
const testLimits = (refusalDelay: string) =>
  Limits.layer.pipe(Layer.provide(ConfigProvider.layer(ConfigProvider.fromUnknown({
    api: { expensive: { perKey: 1, total: 2, refusalDelay, budget: { perSecond: "100 millis", burst: "1 second" } } }
  }))))
const TestLimits = testLimits("0 millis")

/** Runs a query of `millis` for `key` on the TestClock; its answer, or the refusal. */
const runFor = (key: string, millis: number) =>
  Effect.gen(function*() {
    const limits = yield* Limits
    const query = yield* limits.expensive(key, Effect.sleep(millis).pipe(Effect.as("answered"))).pipe(
      Effect.result,
      Effect.forkChild
    )
    yield* TestClock.adjust(millis)
    return yield* Fiber.join(query)
  })

/** Whether `fiber` has ended. */
const ended = <A, E>(fiber: Fiber.Fiber<A, E>) => Effect.map(Fiber.await(fiber).pipe(Effect.timeoutOption(0)), (exit) => exit._tag === "Some")

/** The refusal's Retry-After in seconds, when the key was refused for its budget. */
const retryAfter = (result: Result.Result<string, RateLimited | Unavailable>) =>
  result._tag === "Failure" && result.failure._tag === "RateLimited" ? result.failure.retryAfterSeconds : undefined

describe("Limits: each key's search and count time", () => {
  it.effect("charges a key the time its query took, refuses it until it earned that back, and not another key", () =>
    Effect.gen(function*() {
      // 1.5 s against a budget of 1 s: 500 ms of debt, earned back in 5 s.
      assert.strictEqual((yield* runFor("flooder", 1500))._tag, "Success")
      const refused = yield* runFor("flooder", 0)
      assert.strictEqual(retryAfter(refused), 5)
      assert.match(refused._tag === "Failure" ? refused.failure.message : "", /api\.expensive\.budget: 100ms a second/)
      // Another key has its own budget.
      assert.strictEqual((yield* runFor("polite", 10))._tag, "Success")
      // Refusals cost nothing: asking again and again does not push the wait further.
      for (let i = 0; i < 10; i++) assert.strictEqual((yield* runFor("flooder", 0))._tag, "Failure")
      yield* TestClock.adjust("4980 millis")
      assert.strictEqual(retryAfter(yield* runFor("flooder", 0)), 1)
      yield* TestClock.adjust("20 millis")
      assert.strictEqual((yield* runFor("flooder", 5))._tag, "Success")
    }).pipe(Effect.provide(TestLimits)))

  it.effect("charges a query that failed as much as one that answered", () =>
    Effect.gen(function*() {
      const limits = yield* Limits
      const timedOut = yield* limits.expensive("k", Effect.sleep("2 seconds").pipe(Effect.andThen(Effect.fail("timeout" as const)))).pipe(
        Effect.flip,
        Effect.forkChild
      )
      yield* TestClock.adjust("2 seconds")
      assert.strictEqual(yield* Fiber.join(timedOut), "timeout")
      // 1 s of debt: 10 s to earn back.
      assert.strictEqual(retryAfter(yield* runFor("k", 0)), 10)
    }).pipe(Effect.provide(TestLimits)))

  it.effect("answers a refusal for the key's own limits only after api.expensive.refusalDelay", () =>
    Effect.gen(function*() {
      const limits = yield* Limits
      assert.strictEqual((yield* runFor("flooder", 1500))._tag, "Success")
      const overBudget = yield* limits.expensive("flooder", Effect.succeed("answered")).pipe(Effect.result, Effect.forkChild)
      yield* TestClock.adjust("199 millis")
      assert.isFalse(yield* ended(overBudget))
      yield* TestClock.adjust("1 millis")
      assert.strictEqual(retryAfter(yield* Fiber.join(overBudget)), 5)
      // The key's one slot taken: the second query's refusal waits as long.
      const running = yield* limits.expensive("other", Effect.sleep("1 second")).pipe(Effect.forkChild)
      const busy = yield* limits.expensive("other", Effect.succeed("answered")).pipe(Effect.flip, Effect.forkChild)
      yield* TestClock.adjust("199 millis")
      assert.isFalse(yield* ended(busy))
      yield* TestClock.adjust("1 millis")
      assert.match((yield* Fiber.join(busy)).message, /already runs 1 searches or counts/)
      yield* TestClock.adjust("800 millis")
      yield* Fiber.join(running)
    }).pipe(Effect.provide(testLimits("200 millis"))))
  it.effect("at the defaults, a key that searches back to back runs its queries a twentieth of the time after half a second ahead", () =>
    Effect.gen(function*() {
      const limits = yield* Limits
      let ran = 0
      // 100 ms searches, each asked for as soon as the last was answered or refused.
      yield* limits.expensive("flooder", Effect.sleep("100 millis").pipe(Effect.andThen(Effect.sync(() => void (ran += 100))))).pipe(
        Effect.result,
        Effect.forever,
        Effect.forkChild
      )
      for (let step = 0; step < 2000; step++) yield* TestClock.adjust("10 millis")
      // 20 s at 50 ms a second, 500 ms ahead, and the one search let run while the budget was positive.
      assert.isAtMost(ran, 500 + 20 * 50 + 100)
      assert.isAtLeast(ran, 20 * 50)
    }).pipe(Effect.provide(Limits.layer.pipe(Layer.provide(ConfigProvider.layer(ConfigProvider.fromUnknown({})))))))
})
