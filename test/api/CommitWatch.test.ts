/**
 * The long polls' shared watcher, on a scripted store and the TestClock: one
 * query per interval however many polls wait, a page read only once the
 * sequence drew past what it saw, and only the polls of a changed channel
 * woken.
 */
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Duration, Effect, Fiber, Layer } from "effect"
import { TestClock } from "effect/testing"
import { ChannelId, MessageId } from "../../src/domain/Message.ts"
import { CommitWatch } from "../../src/programs/api/CommitWatch.ts"
import { MessageQuery, type StoredEvent } from "../../src/services/MessageQuery.ts"

const event = (seq: bigint, channelId: number): StoredEvent => ({
  seq,
  kind: "new",
  key: `${channelId}:1:0`,
  channelId: ChannelId.make(channelId),
  messageId: MessageId.make(1),
  version: 0,
  message: null,
  deletedAt: null,
  receivedAt: "2026-01-05T10:00:00.000Z"
})

/** A store whose drawn sequence and committed events the test advances, counting the watcher's reads. */
const scripted = () => {
  const committed: Array<StoredEvent> = []
  const reads = { events: 0, sequence: 0 }
  const sequence = { drawn: 0n }
  const store = {
    newestSeq: Effect.sync(() => committed.at(-1)?.seq ?? 0n),
    newestDrawnSeq: Effect.sync(() => {
      reads.sequence += 1
      return sequence.drawn
    }),
    events: (options: { readonly after: bigint; readonly limit: number }) =>
      Effect.sync(() => {
        reads.events += 1
        return committed.filter((e) => e.seq > options.after).slice(0, options.limit)
      })
  } as unknown as MessageQuery["Service"]
  return { committed, reads, sequence, layer: Layer.succeed(MessageQuery, store) }
}

const config = ConfigProvider.layer(ConfigProvider.fromUnknown({ api: { longPollInterval: "100 millis" } }))

describe("CommitWatch", () => {
  it.effect("reads once per interval however many polls wait, a page only once something was drawn, and wakes only the polls of a changed channel", () =>
    Effect.gen(function*() {
      const store = scripted()
      yield* Effect.gen(function*() {
        const watch = yield* CommitWatch
        yield* TestClock.adjust("100 millis") // the watcher takes its starting point
        const wait = (channelId: number | undefined) =>
          Effect.scoped(Effect.flatMap(
            watch.waiter(channelId === undefined ? undefined : ChannelId.make(channelId)),
            (waiter) => waiter.next(Duration.seconds(5))
          )).pipe(Effect.forkChild({ startImmediately: true }))
        const quiet = yield* Effect.forEach(Array.from({ length: 500 }, (_, i) => 1000 + i), wait)
        const busy = yield* wait(7)
        const any = yield* wait(undefined)
        const before = { ...store.reads }
        yield* TestClock.adjust("1 second")
        assert.deepStrictEqual(
          { events: store.reads.events - before.events, sequence: store.reads.sequence - before.sequence },
          { events: 0, sequence: 10 },
          "one sequence read per interval with 502 polls waiting, no page while nothing was drawn"
        )
        // Drawn by a transaction still in flight: the watcher reads pages until it commits.
        store.sequence.drawn = 1n
        const drawn = store.reads.events
        yield* TestClock.adjust("300 millis")
        assert.strictEqual(store.reads.events - drawn, 3, "one page per interval once something was drawn")
        store.committed.push(event(1n, 7))
        yield* TestClock.adjust("100 millis")
        assert.isTrue(yield* Fiber.join(busy))
        assert.isTrue(yield* Fiber.join(any))
        yield* TestClock.adjust("5 seconds")
        const woken = yield* Effect.forEach(quiet, Fiber.join)
        assert.isTrue(woken.every((result) => result === false), "other channels' polls time out")
      }).pipe(Effect.provide(CommitWatch.layer.pipe(Layer.provide([store.layer, config]))))
    }))
})
