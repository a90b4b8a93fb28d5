/**
 * The hot path's own logic, in milliseconds: the in-memory cache and bus
 * scripted to fail or hang as Redis and RabbitMQ can, and the TestClock for
 * time. What the real tiers do under the same faults is in
 * test/programs/Ingestion.test.ts and test/faults/TierFaults.test.ts.
 */
import { assert, describe, it } from "@effect/vitest"
import { Array, Duration, Effect, Exit, Fiber, Logger, Metric, PubSub, Scope } from "effect"
import { TestClock } from "effect/testing"
import { eventKey, type MessageEvent } from "../../src/domain/Message.ts"
import * as MemoryEventBus from "../../src/layers/MemoryEventBus.ts"
import * as MemoryMessageCache from "../../src/layers/MemoryMessageCache.ts"
import { makeHotPath } from "../../src/programs/HotPath.ts"
import type { IngestProgress } from "../../src/programs/IngestProgress.ts"
import { makePublishLedger } from "../../src/programs/PublishLedger.ts"
import { makeTierHealth } from "../../src/programs/TierHealth.ts"
import { BusUnavailable } from "../../src/services/EventBus.ts"
import { CacheUnavailable } from "../../src/services/MessageCache.ts"
import * as Metrics from "../../src/services/Metrics.ts"
import { created, freshChannelId, makeMessage } from "../support/TestEvents.ts"

const events = (count: number) => {
  const channelId = freshChannelId()
  return Array.makeBy(count, (index) => created(makeMessage(channelId, index + 1), 0))
}

const counter = (metric: Metric.Counter<number>) => Metric.value(metric).pipe(Effect.map((state) => state.count))

/** Switches a scripted tier between answering and failing, as a process that is killed and restarted. */
const switchable = <E>(fail: (operation: string) => E) => {
  let down = false
  return {
    set: (next: boolean) => void (down = next),
    check: (operation: string) => Effect.suspend(() => (down ? Effect.fail(fail(operation)) : Effect.void))
  }
}

interface Setup {
  readonly cache?: MemoryMessageCache.MemoryCacheOptions
  readonly bus?: MemoryEventBus.MemoryBusOptions
  readonly capacity?: number
  readonly publishCapacity?: number
}

/** A hot path over the memory tiers, in its own scope, with its logs and notifications collected. */
const hotPathWith = (setup: Setup = {}) =>
  Effect.gen(function*() {
    const { cache, memory: cached } = yield* MemoryMessageCache.make(setup.cache)
    const { bus, memory: bus_ } = yield* MemoryEventBus.make(setup.bus)
    const logs: Array<{ readonly level: string; readonly message: string }> = []
    const logger = Logger.layer([
      Logger.make(({ logLevel, message }) => {
        logs.push({ level: logLevel, message: String(globalThis.Array.isArray(message) ? message[0] : message) })
      })
    ])
    let refills = 0
    const scope = yield* Scope.make()
    const built = yield* Effect.gen(function*() {
      const redis = yield* makeTierHealth({
        tier: "redis",
        failures: Metrics.redisFailures,
        downMessage: "Redis cache unavailable, falling back to database-only",
        upMessage: "Redis cache available again",
        onRecovered: Effect.sync(() => void refills++)
      })
      const rabbitmq = yield* makeTierHealth({
        tier: "rabbitmq",
        failures: Metrics.rabbitmqFailures,
        downMessage: "RabbitMQ unavailable",
        upMessage: "RabbitMQ available again"
      })
      const progress = yield* PubSub.unbounded<IngestProgress>()
      const done = yield* PubSub.subscribe(progress)
      const ledger = makePublishLedger()
      const hotPath = yield* makeHotPath({
        cache,
        bus,
        redis,
        rabbitmq,
        progress,
        ledger,
        capacity: setup.capacity ?? 1_000,
        publishCapacity: setup.publishCapacity ?? 1_000,
        shutdownTimeout: Duration.seconds(3)
      })
      return { hotPath, done, ledger, redis, rabbitmq }
    }).pipe(Scope.provide(scope), Effect.provide(logger))
    const offerAll = (batch: ReadonlyArray<MessageEvent>) =>
      Effect.forEach(batch, (event) => built.hotPath.offer({ event }), { discard: true }).pipe(Effect.provide(logger))
    /**
     * The next `count` notifications, in arrival order, moving the clock in
     * small steps meanwhile so that scheduled retries fire.
     */
    const settled = (count: number) =>
      Effect.gen(function*() {
        const taking = yield* Effect.gen(function*() {
          const out: Array<Extract<IngestProgress, { _tag: "HotPathDone" }>> = []
          while (out.length < count) {
            const next = yield* PubSub.take(built.done)
            if (next._tag === "HotPathDone") out.push(next)
          }
          return out
        }).pipe(Effect.forkChild)
        for (let step = 0; step < 200 && taking.pollUnsafe() === undefined; step++) {
          yield* TestClock.adjust("50 millis")
          yield* Effect.yieldNow
        }
        return yield* Fiber.join(taking)
      })
    return { ...built, cached, published: bus_.published, logs, refills: () => refills, offerAll, settled, scope }
  })

describe("HotPath", () => {
  it.effect("caches and publishes each new event once; a redelivered event is a duplicate and is not published again; counts each", () =>
    Effect.gen(function*() {
      const { cached, ledger, offerAll, published, settled } = yield* hotPathWith()
      const counts = Effect.all([
        counter(Metrics.eventsCached),
        counter(Metrics.eventsPublished),
        counter(Metrics.eventsDuplicate),
        Metric.value(Metrics.hotPathLatency).pipe(Effect.map((state) => state.count))
      ])
      const before = yield* counts
      const batch = events(20)
      yield* offerAll(batch)
      const first = yield* settled(20)
      assert.deepStrictEqual(first.map((done) => done.verdict), batch.map(() => "new"))
      yield* offerAll(batch.slice(0, 5))
      const again = yield* settled(5)
      assert.deepStrictEqual(again.map((done) => [done.verdict, done.published]), batch.slice(0, 5).map(() => ["duplicate", false]))
      assert.strictEqual(cached.remembered.size, 20)
      assert.deepStrictEqual(published.map(eventKey).sort(), batch.map(eventKey).sort())
      assert.isTrue(batch.every((event) => ledger.status(eventKey(event)) === "confirmed"))
      const after = yield* counts
      assert.deepStrictEqual(after.map((count, index) => count - before[index]!), [20, 20, 5, 25], "cached, published, duplicates, latencies observed")
    }))

  it.effect("with Redis down, publishes anyway with an unknown verdict, warns once, counts every event; refills on recovery", () =>
    Effect.gen(function*() {
      const redis = switchable((operation) => new CacheUnavailable({ operation, cause: "connection refused" }))
      const failuresBefore = yield* counter(Metrics.redisFailures)
      const { logs, offerAll, published, refills, settled } = yield* hotPathWith({ cache: { beforeCall: redis.check } })
      redis.set(true)
      const during = events(12)
      for (const event of during) {
        yield* offerAll([event])
        yield* settled(1)
      }
      assert.strictEqual(published.length, 12, "the bus does not wait for the cache")
      assert.strictEqual((yield* counter(Metrics.redisFailures)) - failuresBefore, 12)
      const warnings = logs.filter((line) => line.level === "Warn")
      assert.deepStrictEqual(warnings.map((line) => line.message), ["Redis cache unavailable, falling back to database-only"])
      assert.strictEqual(refills(), 0)
      redis.set(false)
      yield* offerAll(events(1))
      const [after] = yield* settled(1)
      assert.strictEqual(after?.verdict, "new")
      assert.strictEqual(refills(), 1)
    }))

  it.effect("a dedup check that answered only after a retry reports a duplicate as unknown, and publishes it", () =>
    Effect.gen(function*() {
      // The first attempt reaches Redis and records the keys, but its answer is lost.
      let calls = 0
      const { cached, offerAll, published, settled } = yield* hotPathWith({
        cache: {
          beforeCall: (operation) =>
            Effect.suspend(() => operation === "rememberAll" && ++calls === 2
              ? Effect.fail(new CacheUnavailable({ operation, cause: "timed out" }))
              : Effect.void)
        }
      })
      const [warmup, retried] = events(2)
      yield* offerAll([warmup!])
      yield* settled(1)
      // The lost answer's effect: the key is already in Redis when the retry asks.
      cached.remembered.set(eventKey(retried!), retried!)
      yield* offerAll([retried!])
      const [done] = yield* settled(1)
      assert.strictEqual(calls, 3, "the failed attempt and its retry")
      assert.strictEqual(done?.verdict, "unknown")
      assert.isTrue(done?.published, "an unknown verdict is published: consumers dedupe on message_id")
      assert.deepStrictEqual(published.map(eventKey), [eventKey(warmup!), eventKey(retried!)])
    }))

  it.effect("with RabbitMQ down, stops publishing after the first failure and leaves every event to the relay", () =>
    Effect.gen(function*() {
      let attempts = 0
      const { ledger, offerAll, published, rabbitmq, settled } = yield* hotPathWith({
        bus: {
          beforePublish: () =>
            Effect.suspend(() => {
              attempts++
              return Effect.fail(new BusUnavailable({ operation: "publish", cause: "connection closed" }))
            })
        }
      })
      const first = events(1)
      yield* offerAll(first)
      yield* settled(1)
      assert.strictEqual(attempts, 3, "three attempts on the short schedule")
      assert.isFalse(rabbitmq.isUp())
      const later = events(10)
      yield* offerAll(later)
      const done = yield* settled(10)
      assert.strictEqual(attempts, 3, "no publish while the tier is down: the relay alone probes it")
      assert.isTrue(done.every((entry) => !entry.published))
      assert.strictEqual(published.length, 0)
      assert.isTrue([...first, ...later].every((event) => ledger.status(eventKey(event)) === "unknown"))
    }))

  it.effect("publishes again only the events of a batch that were not confirmed, and reports none failed once all are", () =>
    Effect.gen(function*() {
      const batch = events(3)
      const unlucky = eventKey(batch[1]!)
      const sends = new Map<string, number>()
      const { ledger, offerAll, published, rabbitmq, settled } = yield* hotPathWith({
        bus: {
          // The second event's first two publishes are refused; the rest are confirmed at once.
          beforePublish: (event) =>
            Effect.suspend(() => {
              const key = eventKey(event)
              const sent = (sends.get(key) ?? 0) + 1
              sends.set(key, sent)
              return key === unlucky && sent <= 2
                ? Effect.fail(new BusUnavailable({ operation: "publish", cause: "not confirmed" }))
                : Effect.void
            })
        }
      })
      const failuresBefore = yield* counter(Metrics.rabbitmqFailures)
      yield* offerAll(batch)
      const done = yield* settled(3)
      assert.isTrue(done.every((entry) => entry.published))
      assert.deepStrictEqual(batch.map((event) => sends.get(eventKey(event))), [1, 3, 1])
      assert.strictEqual(published.length, 3)
      assert.isTrue(rabbitmq.isUp())
      assert.strictEqual((yield* counter(Metrics.rabbitmqFailures)) - failuresBefore, 0)
      assert.isTrue(batch.every((event) => ledger.status(eventKey(event)) === "confirmed"))
    }))

  it.effect("never makes the receiver wait: past its capacity an event is skipped, counted, and left to the relay", () =>
    Effect.gen(function*() {
      const skippedBefore = yield* counter(Metrics.hotPathSkipped)
      // Redis hangs, so nothing leaves the queue.
      const { ledger, offerAll } = yield* hotPathWith({ capacity: 16, cache: { beforeCall: () => Effect.never } })
      const batch = events(16 * 20)
      yield* offerAll(batch)
      const skipped = (yield* counter(Metrics.hotPathSkipped)) - skippedBefore
      const inFlight = batch.filter((event) => ledger.status(eventKey(event)) === "pending").length
      assert.isAbove(skipped, 0)
      assert.strictEqual(inFlight + skipped, batch.length, "every event is either in flight or counted as skipped")
      // Held at most: the queue's 16, and what the 16 workers took before they hung.
      assert.isAtMost(inFlight, 16 + 16 * 256)
      const unknown = batch.filter((event) => ledger.status(eventKey(event)) === "unknown").length
      assert.strictEqual(unknown, skipped, "a skipped event is left to the relay, never marked as in flight")
    }))

  it.effect("the cache step never waits for the bus: past its bound of publishes awaiting confirms, events are cached, counted and left to the relay", () =>
    Effect.gen(function*() {
      const skippedBefore = yield* counter(Metrics.hotPathPublishSkipped)
      // RabbitMQ takes the publishes and never confirms them.
      const { cached, ledger, offerAll, published, settled } = yield* hotPathWith({
        publishCapacity: 8,
        bus: { beforePublish: () => Effect.never }
      })
      const awaitingConfirms = events(8)
      yield* offerAll(awaitingConfirms)
      for (let turn = 0; turn < 100 && cached.remembered.size < 8; turn++) yield* Effect.yieldNow
      assert.strictEqual(cached.remembered.size, 8)
      const behind = events(40)
      yield* offerAll(behind)
      const done = yield* settled(40)
      assert.deepStrictEqual(done.map((entry) => entry.event).map(eventKey).sort(), behind.map(eventKey).sort())
      assert.isTrue(done.every((entry) => entry.cached && entry.verdict === "new" && !entry.published))
      assert.strictEqual(cached.remembered.size, 48, "every event behind the stuck publishes was cached")
      assert.strictEqual((yield* counter(Metrics.hotPathPublishSkipped)) - skippedBefore, 40)
      assert.isTrue(behind.every((event) => ledger.status(eventKey(event)) === "unknown"), "the relay publishes them")
      assert.isTrue(awaitingConfirms.every((event) => ledger.status(eventKey(event)) === "pending"))
      assert.strictEqual(published.length, 0)
    }))

  it.effect("on close, finishes the work already queued, bounded by its shutdown timeout", () =>
    Effect.gen(function*() {
      const { offerAll, published, scope } = yield* hotPathWith({ bus: { beforePublish: () => Effect.sleep("100 millis") } })
      yield* offerAll(events(50))
      const closing = yield* Scope.close(scope, Exit.void).pipe(Effect.forkChild)
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(closing)
      assert.strictEqual(published.length, 50)
    }))

  it.effect("on close, a tier that hangs cannot hold the shutdown past its timeout", () =>
    Effect.gen(function*() {
      const { offerAll, published, scope } = yield* hotPathWith({ bus: { beforePublish: () => Effect.never } })
      yield* offerAll(events(5))
      yield* Effect.yieldNow
      const closing = yield* Scope.close(scope, Exit.void).pipe(Effect.forkChild)
      yield* TestClock.adjust("2 seconds")
      assert.isUndefined(closing.pollUnsafe(), "still inside the 3 s timeout")
      yield* TestClock.adjust("2 seconds")
      yield* Fiber.join(closing)
      assert.strictEqual(published.length, 0)
    }))
})
