/**
 * The writer's own logic, in milliseconds: an in-memory store scripted to
 * fail, die or hang as a real connection can, and the TestClock for time.
 */
import { assert, describe, it } from "@effect/vitest"
import { Array, Cause, Duration, Effect, Exit, Fiber, Metric, Scope } from "effect"
import { TestClock } from "effect/testing"
import type { MessageEvent } from "../../src/domain/Message.ts"
import * as MemoryMessageStore from "../../src/layers/MemoryMessageStore.ts"
import { type Accepted, makeBatchWriter, UncommittedAtShutdown } from "../../src/programs/BatchWriter.ts"
import { MessageStore, StoreError } from "../../src/services/MessageStore.ts"
import * as Metrics from "../../src/services/Metrics.ts"
import { created, freshChannelId, makeMessage } from "../support/TestEvents.ts"

const options = {
  batchSize: 100,
  flushInterval: Duration.millis(10),
  queueCapacity: 1_000,
  writers: 2,
  shutdownTimeout: Duration.seconds(30),
  writeDeadline: Duration.seconds(15)
}

const events = (count: number) => {
  const channelId = freshChannelId()
  return Array.makeBy(count, (index) => created(makeMessage(channelId, index + 1), 0))
}

/** A writer over a scripted memory store, in its own scope; committed batches are collected. */
const writerWith = (
  storeOptions: MemoryMessageStore.MemoryStoreOptions,
  afterCommit: (entries: ReadonlyArray<Accepted>) => Effect.Effect<void> = () => Effect.void
) =>
  Effect.gen(function*() {
    const { memory, store } = yield* MemoryMessageStore.make(storeOptions)
    const scope = yield* Scope.make()
    const committed: Array<Accepted> = []
    let uncommitted = 0
    const writer = yield* makeBatchWriter({
      ...options,
      uncommitted: () => uncommitted,
      onCommitted: (entries) =>
        Effect.sync(() => {
          committed.push(...entries)
          uncommitted -= entries.length
        }).pipe(Effect.andThen(afterCommit(entries)))
    }).pipe(Effect.provideService(MessageStore, store), Scope.provide(scope))
    const offer = (batch: ReadonlyArray<MessageEvent>) =>
      Effect.forEach(batch, (event) => {
        uncommitted++
        return writer.offer({ event, batch: 0 })
      }, { discard: true })
    return { memory, committed, offer, scope }
  })

/** Lets forked fibers run and moves the clock in small steps, so scheduled retries fire in order. */
const advance = (total: Duration.Input, step: Duration.Input = "100 millis") =>
  Effect.gen(function*() {
    const steps = Math.ceil(Duration.toMillis(Duration.fromInputUnsafe(total)) / Duration.toMillis(Duration.fromInputUnsafe(step)))
    for (let index = 0; index < steps; index++) {
      yield* TestClock.adjust(step)
      yield* Effect.yieldNow
    }
  })

const counter = (metric: Metric.Counter<number>) => Metric.value(metric).pipe(Effect.map((state) => state.count))

describe("BatchWriter", () => {
  it.effect("writes a full batch (ingest.batchSize rows) at once, and a partial one ingest.flushInterval after its first row", () =>
    Effect.gen(function*() {
      const sizes: Array<number> = []
      const { memory, offer } = yield* writerWith({ beforeWrite: (batch) => Effect.sync(() => void sizes.push(batch.length)) })
      yield* offer(events(250))
      yield* advance("0 millis")
      for (let index = 0; index < 10; index++) yield* Effect.yieldNow
      assert.deepStrictEqual(sizes, [100, 100], "the two full batches, without waiting")
      assert.strictEqual(memory.committed.size, 200)
      yield* TestClock.adjust("9 millis")
      yield* Effect.yieldNow
      assert.strictEqual(memory.committed.size, 200, "the partial batch waits for its interval")
      yield* advance("1 millis", "1 millis")
      for (let index = 0; index < 10; index++) yield* Effect.yieldNow
      assert.deepStrictEqual(sizes, [100, 100, 50])
      assert.strictEqual(memory.committed.size, 250)
      // A lone row, later: written one interval after it came, not before.
      yield* offer(events(1))
      yield* TestClock.adjust("9 millis")
      for (let index = 0; index < 10; index++) yield* Effect.yieldNow
      assert.strictEqual(memory.committed.size, 250)
      yield* advance("1 millis", "1 millis")
      for (let index = 0; index < 10; index++) yield* Effect.yieldNow
      assert.deepStrictEqual(sizes, [100, 100, 50, 1])
    }))

  it.effect("retries a defect inside the client (a failed ROLLBACK) as a failure, and commits", () =>
    Effect.gen(function*() {
      let attempts = 0
      const failuresBefore = yield* counter(Metrics.databaseFailures)
      const { committed, memory, offer } = yield* writerWith({
        beforeWrite: () => Effect.suspend(() => ++attempts <= 2 ? Effect.die(new Error("ROLLBACK failed: connection closed")) : Effect.void)
      })
      yield* offer(events(10))
      yield* advance("5 seconds")
      assert.strictEqual(memory.committed.size, 10)
      assert.strictEqual(committed.length, 10)
      assert.strictEqual(attempts, 3)
      assert.strictEqual((yield* counter(Metrics.databaseFailures)) - failuresBefore, 2)
    }))

  it.effect("times each batch's committed write in ingest_write_seconds: the attempt that succeeded, not the failures before it", () =>
    Effect.gen(function*() {
      let attempts = 0
      const before = yield* Metric.value(Metrics.writeDuration)
      const { memory, offer } = yield* writerWith({
        beforeWrite: () =>
          Effect.suspend(() =>
            ++attempts === 1
              ? Effect.sleep("2 seconds").pipe(
                Effect.andThen(Effect.fail(new StoreError({ operation: "writeBatch", retryable: true, cause: "connection reset" })))
              )
              : Effect.sleep("300 millis")
          )
      })
      yield* offer(events(5))
      yield* advance("5 seconds", "50 millis")
      assert.strictEqual(memory.committed.size, 5)
      assert.strictEqual(attempts, 2)
      const after = yield* Metric.value(Metrics.writeDuration)
      assert.strictEqual(after.count - before.count, 1)
      assert.closeTo(after.sum - before.sum, 0.3, 0.06)
    }))

  it.effect("abandons a write that never answers after its deadline, even if it ignores interruption, and retries it", () =>
    Effect.gen(function*() {
      let attempts = 0
      const { committed, memory, offer } = yield* writerWith({
        beforeWrite: () => Effect.suspend(() => ++attempts === 1 ? Effect.uninterruptible(Effect.never) : Effect.void)
      })
      yield* offer(events(3))
      yield* advance("10 seconds")
      assert.strictEqual(memory.committed.size, 0, "still waiting inside the deadline")
      yield* advance("10 seconds")
      assert.strictEqual(memory.committed.size, 3)
      assert.strictEqual(committed.length, 3)
      assert.strictEqual(attempts, 2)
    }))

  it.effect("keeps retrying through a long outage, backing off to at most about 1 s between attempts, and writes within 1.5 s of the recovery", () =>
    Effect.gen(function*() {
      let attempts = 0
      let down = true
      const { memory, offer } = yield* writerWith({
        beforeWrite: () =>
          Effect.suspend(() => {
            attempts++
            return down
              ? Effect.fail(new StoreError({ operation: "writeBatch", retryable: true, cause: "connection refused" }))
              : Effect.void
          })
      })
      yield* offer(events(5))
      yield* advance("10 minutes", "1 second")
      assert.strictEqual(memory.committed.size, 0)
      // Capped backoff: ten minutes at no more than 1.2 s apart (1 s jittered) is at least 500 attempts;
      // a 5 s cap would give fewer than 150.
      assert.isAbove(attempts, 400)
      down = false
      yield* advance("1500 millis")
      assert.strictEqual(memory.committed.size, 5)
    }))

  it.effect("isolates an event PostgreSQL refuses while it answers pings; the rest of the batch commits", () =>
    Effect.gen(function*() {
      const batch = events(16)
      const poison = batch[11]!
      const rejectedBefore = yield* Metric.value(Metrics.eventsRejected.pipe(Metric.withAttributes({ reason: "database" })))
      const { committed, memory, offer } = yield* writerWith({
        beforeWrite: (written) =>
          written.includes(poison)
            ? Effect.fail(new StoreError({ operation: "writeBatch", retryable: false, cause: "invalid byte sequence" }))
            : Effect.void
      })
      yield* offer(batch)
      yield* advance("3 seconds")
      assert.strictEqual(memory.committed.size, 15)
      assert.isFalse([...memory.committed.values()].includes(poison))
      assert.strictEqual(committed.length, 16, "the refused event is settled too: logged whole, not retried forever")
      const rejected = yield* Metric.value(Metrics.eventsRejected.pipe(Metric.withAttributes({ reason: "database" })))
      assert.strictEqual(rejected.count - rejectedBefore.count, 1)
    }))

  it.effect("restarts the writer if it ever ends while running, logs it, counts it, and goes on committing", () =>
    Effect.gen(function*() {
      const restartsBefore = yield* counter(Metrics.writerRestarts)
      let broken = true
      const { memory, offer } = yield* writerWith({}, () =>
        Effect.suspend(() => {
          if (!broken) return Effect.void
          broken = false
          return Effect.die(new Error("a bug after the commit"))
        }))
      yield* offer(events(4))
      yield* advance("2 seconds")
      assert.strictEqual((yield* counter(Metrics.writerRestarts)) - restartsBefore, 1)
      yield* offer(events(6))
      yield* advance("2 seconds")
      assert.strictEqual(memory.committed.size, 10)
    }))

  it.effect("on close, commits what is queued; if it cannot within the timeout, dies with exit code 75 naming the count", () =>
    Effect.gen(function*() {
      const { offer, scope } = yield* writerWith({
        beforeWrite: () => Effect.fail(new StoreError({ operation: "writeBatch", retryable: true, cause: "connection refused" }))
      })
      yield* offer(events(7))
      yield* advance("1 second")
      const closing = yield* Scope.close(scope, Exit.void).pipe(Effect.exit, Effect.forkChild)
      yield* advance("31 seconds", "500 millis")
      const exit = yield* Fiber.join(closing)
      assert.isTrue(Exit.isFailure(exit))
      const defect = Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined
      assert.instanceOf(defect, UncommittedAtShutdown)
      assert.strictEqual((defect as UncommittedAtShutdown).uncommitted, 7)
    }))
})
