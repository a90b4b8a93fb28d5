/**
 * The source → ingestion path of the daemon (`receive`, src/programs/Gateway.ts)
 * in milliseconds: the memory TelegramSource, the memory tiers and the
 * TestClock. The same path over GramJS and the simulator is in test/telegram/.
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, ConfigProvider, Effect, Exit, Fiber, Layer } from "effect"
import { TestClock } from "effect/testing"
import * as MemoryEventBus from "../../src/layers/MemoryEventBus.ts"
import * as MemoryMessageCache from "../../src/layers/MemoryMessageCache.ts"
import * as MemoryMessageStore from "../../src/layers/MemoryMessageStore.ts"
import * as MemoryTelegramSource from "../../src/layers/MemoryTelegramSource.ts"
import { receive } from "../../src/programs/Gateway.ts"
import * as Ingestion from "../../src/programs/Ingestion.ts"
import { BusOutbox } from "../../src/services/BusOutbox.ts"
import { MessageQuery } from "../../src/services/MessageQuery.ts"
import { MessageStore } from "../../src/services/MessageStore.ts"
import { TelegramFatal, TelegramSource } from "../../src/services/TelegramSource.ts"
import { created, freshChannelId, makeMessage } from "../support/TestEvents.ts"

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
})
