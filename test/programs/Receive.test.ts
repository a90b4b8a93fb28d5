/**
 * The source → ingestion path of the daemon (`receive`, src/programs/Gateway.ts)
 * in milliseconds: the memory TelegramSource, the memory tiers and the
 * TestClock. The same path over GramJS and the simulator is in test/telegram/.
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, ConfigProvider, Effect, Exit, Fiber, Layer, Metric } from "effect"
import { TestClock } from "effect/testing"
import * as MemoryEventBus from "../../src/layers/MemoryEventBus.ts"
import * as MemoryMessageCache from "../../src/layers/MemoryMessageCache.ts"
import * as MemoryMessageStore from "../../src/layers/MemoryMessageStore.ts"
import * as MemoryTelegramSource from "../../src/layers/MemoryTelegramSource.ts"
import { receive } from "../../src/programs/Gateway.ts"
import * as Ingestion from "../../src/programs/Ingestion.ts"
import { BusOutbox } from "../../src/services/BusOutbox.ts"
import { EventBus } from "../../src/services/EventBus.ts"
import { MessageCache } from "../../src/services/MessageCache.ts"
import { MessageQuery } from "../../src/services/MessageQuery.ts"
import { MessageStore } from "../../src/services/MessageStore.ts"
import * as Metrics from "../../src/services/Metrics.ts"
import { TelegramFatal, TelegramSource } from "../../src/services/TelegramSource.ts"
import { eventKey } from "../../src/domain/Message.ts"
import { created, deleted, edited, freshChannelId, makeMessage } from "../support/TestEvents.ts"

const config = ConfigProvider.layer(ConfigProvider.fromUnknown({ ingest: { batchSize: 100, flushInterval: "10 millis" } }))

/**
 * What the bus relay reads back from PostgreSQL: here nothing is ever left
 * for it (the memory bus confirms every publish), so it finds an empty log
 * and keeps its mark; it only needs to be able to ask.
 */
const emptyEventLog = Layer.mergeAll(
  Layer.succeed(BusOutbox, BusOutbox.of({
    readMark: () => Effect.succeedNone,
    saveMark: () => Effect.void,
    newestSeq: Effect.succeed(0n),
    countAfter: () => Effect.succeed(0)
  })),
  Layer.succeed(MessageQuery, { events: () => Effect.succeed([]) } as unknown as MessageQuery["Service"])
)

/** Lets the fibers run, moving the clock 10 ms at a time, until `done` or `limit` steps. */
const settle = (done: () => boolean, limit = 200) =>
  Effect.gen(function*() {
    for (let step = 0; step < limit && !done(); step++) {
      yield* TestClock.adjust("10 millis")
      for (let turn = 0; turn < 5; turn++) yield* Effect.yieldNow
    }
  })

describe("receive", () => {
  it.effect("runs each source batch's onCommitted once its events are committed, in order, an empty batch included; a refused session ends it with TelegramFatal", () =>
    Effect.gen(function*() {
      const { memory: stored, store } = yield* MemoryMessageStore.make()
      const { memory: telegram, source } = yield* MemoryTelegramSource.make
      const tiers = Layer.mergeAll(
        Layer.succeed(MessageStore, store),
        MemoryMessageCache.layer(),
        MemoryEventBus.layer(),
        emptyEventLog
      )
      yield* Effect.gen(function*() {
        const recorded: Array<string> = []
        const running = yield* receive.pipe(Effect.provideService(TelegramSource, source), Effect.forkChild)
        const channelId = freshChannelId()
        for (let id = 1; id <= 3; id++) {
          yield* telegram.push({
            events: [created(makeMessage(channelId, id), 0), created(makeMessage(channelId, id + 100), 0)],
            onCommitted: Effect.sync(() => {
              // Progress moves only once the batch is durable.
              assert.isTrue(stored.committed.size >= id * 2)
              recorded.push(`batch ${id}`)
            })
          })
        }
        yield* telegram.push({ events: [], onCommitted: Effect.sync(() => void recorded.push("pts only")) })
        yield* settle(() => recorded.length === 4)
        assert.deepStrictEqual(recorded, ["batch 1", "batch 2", "batch 3", "pts only"])
        assert.strictEqual(stored.committed.size, 6)

        yield* telegram.refuse(new TelegramFatal({ reason: "AUTH_KEY_UNREGISTERED", method: "updates.GetState" }))
        const exit = yield* Fiber.await(running)
        assert.isTrue(Exit.isFailure(exit))
        const error = Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined
        assert.instanceOf(error, TelegramFatal)
      }).pipe(Effect.provide(Ingestion.layer.pipe(Layer.provide(tiers))))
    }).pipe(Effect.provide(config)))
  it.effect("counts every event received by its kind, in one-event batches and mixed ones alike", () =>
    Effect.gen(function*() {
      const { memory: stored, store } = yield* MemoryMessageStore.make()
      const { memory: telegram, source } = yield* MemoryTelegramSource.make
      const tiers = Layer.mergeAll(Layer.succeed(MessageStore, store), MemoryMessageCache.layer(), MemoryEventBus.layer(), emptyEventLog)
      const count = (kind: "new" | "edited" | "deleted") =>
        Metric.value(Metrics.eventsReceived.pipe(Metric.withAttributes({ kind }))).pipe(Effect.map((state) => state.count))
      const counts = Effect.all({ new: count("new"), edited: count("edited"), deleted: count("deleted") })
      yield* Effect.gen(function*() {
        const before = yield* counts
        yield* receive.pipe(Effect.provideService(TelegramSource, source), Effect.forkChild)
        const channelId = freshChannelId()
        const batches = [
          [created(makeMessage(channelId, 1), 0)],
          [edited(makeMessage(channelId, 1), 1_700_000_000, "edited", 0)],
          [deleted(channelId, 1, 0)],
          [created(makeMessage(channelId, 2), 0), created(makeMessage(channelId, 3), 0), deleted(channelId, 3, 0)]
        ]
        for (const events of batches) yield* telegram.push({ events, onCommitted: Effect.void })
        yield* settle(() => stored.committed.size === 6)
        const after = yield* counts
        assert.deepStrictEqual(
          { new: after.new - before.new, edited: after.edited - before.edited, deleted: after.deleted - before.deleted },
          { new: 3, edited: 1, deleted: 2 }
        )
      }).pipe(Effect.provide(Ingestion.layer.pipe(Layer.provide(tiers))))
    }).pipe(Effect.provide(config)))

  it.effect("takes a source batch past both queues' room: waits for the writer, leaves the hot path's overflow to the relay, counts every event once", () =>
    Effect.gen(function*() {
      const { memory: stored, store } = yield* MemoryMessageStore.make()
      const { memory: telegram, source } = yield* MemoryTelegramSource.make
      const { cache, memory: cached } = yield* MemoryMessageCache.make()
      const { bus, memory: { published } } = yield* MemoryEventBus.make()
      const tiers = Layer.mergeAll(
        Layer.succeed(MessageStore, store),
        Layer.succeed(MessageCache, cache),
        Layer.succeed(EventBus, bus),
        emptyEventLog
      )
      const count = (kind: "new" | "edited" | "deleted") =>
        Metric.value(Metrics.eventsReceived.pipe(Metric.withAttributes({ kind }))).pipe(Effect.map((state) => state.count))
      const skippedCount = Metric.value(Metrics.hotPathSkipped).pipe(Effect.map((state) => state.count))
      const before = { new: yield* count("new"), edited: yield* count("edited"), deleted: yield* count("deleted"), skipped: yield* skippedCount }

      const channelId = freshChannelId()
      const events = [
        ...Array.from({ length: 20 }, (_, index) => created(makeMessage(channelId, index + 1), 0)),
        ...Array.from({ length: 6 }, (_, index) => edited(makeMessage(channelId, index + 1), 1_700_000_000, "edited", 0)),
        ...Array.from({ length: 4 }, (_, index) => deleted(channelId, index + 10, 0))
      ]
      let committed = false
      yield* Effect.gen(function*() {
        yield* receive.pipe(Effect.provideService(TelegramSource, source), Effect.forkChild)
        yield* telegram.push({ events, onCommitted: Effect.sync(() => void (committed = true)) })
        yield* settle(() => committed)
        // The hot path's work, which does not hold the commit.
        yield* settle(() => false, 20)
      }).pipe(Effect.provide(Ingestion.layer.pipe(Layer.provide(tiers))))

      assert.isTrue(committed)
      assert.deepStrictEqual([...stored.committed.keys()].sort(), events.map(eventKey).sort())
      assert.strictEqual((yield* count("new")) - before.new, 20)
      assert.strictEqual((yield* count("edited")) - before.edited, 6)
      assert.strictEqual((yield* count("deleted")) - before.deleted, 4)
      // The hot path holds 4 events: the rest of what arrived at once went to the relay, counted.
      const skipped = (yield* skippedCount) - before.skipped
      assert.isAbove(skipped, 0)
      assert.strictEqual(published.length + skipped, events.length, "each event either published by the hot path or skipped")
      assert.strictEqual(cached.remembered.size + skipped, events.length)
    }).pipe(Effect.provide(ConfigProvider.layer(ConfigProvider.fromUnknown({
      ingest: { batchSize: 100, flushInterval: "10 millis", queueCapacity: 8, hotPathCapacity: 4 }
    })))))
})
