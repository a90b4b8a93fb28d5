/**
 * The long polls' shared watcher, on a scripted store and the TestClock: one
 * query per interval however many polls wait, a page read only once the
 * sequence drew past what it saw, and only the polls of a changed channel
 * woken; a long poll's one query on arrival, none at its deadline, and its
 * deadline spread; none on arrival at the head; the empty page's checks
 * answered from memory, and polls asking the same at once sharing one read.
 */
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Duration, Effect, Fiber, Layer } from "effect"
import { TestClock } from "effect/testing"
import { ChannelId, MessageId } from "../../src/domain/Message.ts"
import { channelMemory, CommitWatch, spreadWait, waitSpread } from "../../src/programs/api/CommitWatch.ts"
import { MessageQuery, QueryError, type StoredEvent } from "../../src/services/MessageQuery.ts"

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

/**
 * A store whose drawn sequence and committed events the test advances,
 * counting the watcher's reads. A channel or sequence read answers what it
 * found when it began, `latency` later (on the TestClock), as a statement
 * answers from its snapshot.
 */
const scripted = (latency: Duration.Input = Duration.zero) => {
  const committed: Array<StoredEvent> = []
  const reads = { events: 0, sequence: 0, channels: 0 }
  const sequence = { drawn: 0n }
  const channels = new Set<number>()
  const store = {
    channelExists: (channelId: number) =>
      Effect.sync(() => {
        reads.channels += 1
        return channels.has(channelId)
      }).pipe(Effect.tap(() => Effect.sleep(latency))),
    newestSeq: Effect.sync(() => committed.at(-1)?.seq ?? 0n),
    newestDrawnSeq: Effect.sync(() => {
      reads.sequence += 1
      return sequence.drawn
    }).pipe(Effect.tap(() => Effect.sleep(latency))),
    events: (options: { readonly after: bigint; readonly limit: number }) =>
      Effect.sync(() => {
        reads.events += 1
        return committed.filter((e) => e.seq > options.after).slice(0, options.limit)
      })
  } as unknown as MessageQuery["Service"]
  return { committed, reads, sequence, channels, layer: Layer.succeed(MessageQuery, store) }
}

const config = ConfigProvider.layer(ConfigProvider.fromUnknown({ api: { longPollInterval: "100 millis" } }))
/** A watcher that looks once at its start and then not for a minute: the reads counted are the polls' own. */
const slowWatcher = ConfigProvider.layer(ConfigProvider.fromUnknown({ api: { longPollInterval: "1 minute" } }))

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

  it("spreads consecutive polls' waits evenly over the last fifth of the wait, the same every time", () => {
    const wait = Duration.seconds(5)
    const waits = Array.from({ length: 500 }, (_, n) => Duration.toMillis(spreadWait(wait, n)))
    assert.deepStrictEqual(waits, Array.from({ length: 500 }, (_, n) => Duration.toMillis(spreadWait(wait, n))))
    assert.isTrue(waits.every((ms) => ms > 5000 * (1 - waitSpread) && ms <= 5000), "within (4 s, 5 s]")
    // Ten slices of the 1 s spread: no slice holds more than a few polls above its even share.
    const slices = Array.from({ length: 10 }, (_, slice) => waits.filter((ms) => Math.floor((5000 - ms) / 100) === slice).length)
    assert.isTrue(slices.every((n) => n >= 45 && n <= 55), JSON.stringify(slices))
  })

  it.effect("a long poll reads its page once when it arrives and not at its deadline, and again only when its channel commits", () =>
    Effect.gen(function*() {
      const store = scripted()
      // The polls' cursor (0) is behind what the watcher starts from: they read on arrival.
      store.committed.push(event(1n, 9))
      store.sequence.drawn = 1n
      yield* Effect.gen(function*() {
        const watch = yield* CommitWatch
        yield* TestClock.adjust("100 millis")
        const pages = { quiet: 0, busy: 0 }
        const checks = { quiet: 0, busy: 0 }
        const poll = (name: "quiet" | "busy", channelId: number) =>
          watch.poll({
            channelId: ChannelId.make(channelId),
            after: 0n,
            wait: Duration.seconds(5),
            page: Effect.sync(() => {
              pages[name] += 1
              return store.committed.filter((e) => e.channelId === channelId)
            }),
            whenEmpty: Effect.sync(() => void (checks[name] += 1))
          }).pipe(Effect.forkChild({ startImmediately: true }))
        const quiet = yield* poll("quiet", 1)
        const busy = yield* poll("busy", 7)
        assert.deepStrictEqual([pages, checks], [{ quiet: 1, busy: 1 }, { quiet: 1, busy: 1 }], "one page and one check each on arrival")
        yield* TestClock.adjust("1 second")
        store.sequence.drawn = 2n
        store.committed.push(event(2n, 7))
        yield* TestClock.adjust("100 millis")
        assert.deepStrictEqual((yield* Fiber.join(busy)).map((e) => e.seq), [2n], "woken by its channel's commit")
        assert.strictEqual(pages.busy, 2)
        yield* TestClock.adjust("5 seconds")
        assert.deepStrictEqual(yield* Fiber.join(quiet), [])
        assert.deepStrictEqual([pages.quiet, checks.quiet], [1, 1], "the deadline answers the empty page it read")
      }).pipe(Effect.provide(CommitWatch.layer.pipe(Layer.provide([store.layer, config]))))
    }))

  it.effect("a long poll ends by its spread deadline, and one with a ready page or a failed check does not wait", () =>
    Effect.gen(function*() {
      const store = scripted()
      store.committed.push(event(1n, 9)) // the polls' cursor (0) is behind the watcher: each reads its page
      yield* Effect.gen(function*() {
        const watch = yield* CommitWatch
        const wait = Duration.seconds(5)
        const empty = (channelId: number) =>
          watch.poll({ channelId: ChannelId.make(channelId), after: 0n, wait, page: Effect.succeed([]), whenEmpty: Effect.void }).pipe(
            Effect.forkChild({ startImmediately: true })
          )
        const polls = yield* Effect.forEach([1, 2, 3, 4], empty)
        // The watcher counts polls from its start: these are its first four.
        const deadlines = [0, 1, 2, 3].map((n) => Duration.toMillis(spreadWait(wait, n))).sort((a, b) => a - b)
        for (const deadline of deadlines) {
          yield* TestClock.setTime(deadline - 1)
          const done = yield* Effect.forEach(polls, (fiber) => Effect.sync(() => fiber.pollUnsafe() !== undefined))
          assert.strictEqual(done.filter(Boolean).length, deadlines.indexOf(deadline), `before ${deadline} ms`)
          yield* TestClock.setTime(deadline)
        }
        assert.deepStrictEqual(yield* Effect.forEach(polls, Fiber.join), [[], [], [], []])
        const ready = yield* watch.poll({
          channelId: undefined,
          after: 0n,
          wait,
          page: Effect.succeed([event(9n, 1)]),
          whenEmpty: Effect.fail("checked a page with events")
        })
        assert.strictEqual(ready.length, 1)
        const refused = yield* watch.poll({ channelId: undefined, after: 0n, wait, page: Effect.succeed([]), whenEmpty: Effect.fail("404") }).pipe(
          Effect.flip
        )
        assert.strictEqual(refused, "404")
      }).pipe(Effect.provide(CommitWatch.layer.pipe(Layer.provide([store.layer, config]))))
    }))

  it.effect("answers the empty page's checks from what it read: known channels for a while, unknown ones and cursors past the sequence from the store", () =>
    Effect.gen(function*() {
      const store = scripted()
      store.channels.add(1)
      store.sequence.drawn = 5n
      yield* Effect.gen(function*() {
        const watch = yield* CommitWatch
        yield* TestClock.adjust("200 millis") // the watcher's starting point, then a read of the sequence
        const sequenceReads = store.reads.sequence
        assert.strictEqual(yield* watch.drawnAtLeast(5n), 5n)
        assert.strictEqual(yield* watch.drawnAtLeast(3n), 5n)
        assert.strictEqual(store.reads.sequence, sequenceReads, "a cursor at or below the sequence the watcher read costs nothing")
        store.sequence.drawn = 8n
        assert.strictEqual(yield* watch.drawnAtLeast(7n), 8n, "past it: read now")
        assert.strictEqual(yield* watch.drawnAtLeast(9n), 8n, "and refused when still past it")
        assert.strictEqual(store.reads.sequence, sequenceReads + 2)

        assert.isTrue(yield* watch.channelKnown(ChannelId.make(1)))
        assert.isTrue(yield* watch.channelKnown(ChannelId.make(1)))
        assert.isFalse(yield* watch.channelKnown(ChannelId.make(2)))
        store.channels.add(2)
        assert.isTrue(yield* watch.channelKnown(ChannelId.make(2)), "an unknown channel is asked for again")
        assert.strictEqual(store.reads.channels, 3, "a known channel is asked for once")
        yield* TestClock.adjust(channelMemory)
        assert.isTrue(yield* watch.channelKnown(ChannelId.make(1)))
        assert.strictEqual(store.reads.channels, 4, "and again once its memory ran out")

        store.committed.push(event(6n, 3))
        yield* TestClock.adjust("100 millis")
        assert.isTrue(yield* watch.channelKnown(ChannelId.make(3)))
        assert.strictEqual(store.reads.channels, 4, "a channel the watcher saw commit is known")
      }).pipe(Effect.provide(CommitWatch.layer.pipe(Layer.provide([store.layer, config]))))
    }))
  it.effect("polls asking the same at once share one read, and one that arrives after a read began asks again when its answer would refuse it", () =>
    Effect.gen(function*() {
      const store = scripted("5 millis")
      for (let channel = 1; channel <= 100; channel++) store.channels.add(channel)
      store.sequence.drawn = 7n // past what the watcher starts from (no event): cursor 6 needs a read
      yield* Effect.gen(function*() {
        const watch = yield* CommitWatch
        yield* TestClock.adjust("1 milli") // the watcher's starting point; its next look is a minute away
        const before = { ...store.reads }
        const burst = yield* Effect.forEach(
          Array.from({ length: 500 }, (_, n) => Effect.all([watch.channelKnown(ChannelId.make(1 + (n % 100))), watch.drawnAtLeast(6n)], { concurrency: 2 })
          ),
          (ask) => Effect.forkChild(ask, { startImmediately: true })
        )
        yield* TestClock.adjust("5 millis")
        const answers = yield* Effect.forEach(burst, Fiber.join)
        assert.isTrue(answers.every(([known, drawn]) => known && drawn === 7n))
        assert.deepStrictEqual(
          { channels: store.reads.channels - before.channels, sequence: store.reads.sequence - before.sequence },
          { channels: 100, sequence: 1 },
          "500 polls on 100 channels: one read per channel and one of the sequence"
        )

        // A read of channel 200 begins before it commits; a poll that arrives after the commit is not refused by it.
        const early = yield* Effect.forkChild(watch.channelKnown(ChannelId.make(200)), { startImmediately: true })
        store.channels.add(200)
        store.sequence.drawn = 9n
        const earlySeq = yield* Effect.forkChild(watch.drawnAtLeast(9n), { startImmediately: true })
        store.sequence.drawn = 10n
        const late = yield* Effect.forkChild(watch.channelKnown(ChannelId.make(200)), { startImmediately: true })
        const lateSeq = yield* Effect.forkChild(watch.drawnAtLeast(10n), { startImmediately: true })
        yield* TestClock.adjust("10 millis")
        assert.isFalse(yield* Fiber.join(early), "the read that began first answers what it saw")
        assert.isTrue(yield* Fiber.join(late), "the later poll asked again")
        assert.strictEqual(yield* Fiber.join(earlySeq), 9n)
        assert.strictEqual(yield* Fiber.join(lateSeq), 10n, "a cursor drawn after the shared read began is read again")
      }).pipe(Effect.provide(CommitWatch.layer.pipe(Layer.provide([store.layer, slowWatcher]))))
    }))

  it.effect("a long poll at the head reads no page on arrival, reads it once its channel commits, and reads on arrival while the watcher fails", () =>
    Effect.gen(function*() {
      const store = scripted()
      store.committed.push(event(1n, 9))
      store.sequence.drawn = 1n
      let down = false
      const flaky = Layer.succeed(MessageQuery, {
        channelExists: (channelId: ChannelId) => Effect.succeed(channelId > 0),
        newestSeq: Effect.suspend(() => down ? Effect.fail(new QueryError({ operation: "newestSeq", cause: "down" })) : Effect.succeed(1n)),
        newestDrawnSeq: Effect.suspend(() =>
          down ? Effect.fail(new QueryError({ operation: "newestDrawnSeq", cause: "down" })) : Effect.succeed(store.sequence.drawn)
        ),
        events: (options: { readonly after: bigint; readonly limit: number }) =>
          Effect.sync(() => store.committed.filter((e) => e.seq > options.after).slice(0, options.limit))
      } as unknown as MessageQuery["Service"])
      yield* Effect.gen(function*() {
        const watch = yield* CommitWatch
        yield* TestClock.adjust("100 millis") // the watcher starts from event 1
        let pages = 0
        const poll = (after: bigint) =>
          watch.poll({
            channelId: ChannelId.make(7),
            after,
            wait: Duration.seconds(5),
            page: Effect.sync(() => {
              pages += 1
              return store.committed.filter((e) => e.channelId === 7 && e.seq > after)
            }),
            whenEmpty: Effect.void
          }).pipe(Effect.forkChild({ startImmediately: true }))
        const head = yield* poll(1n)
        assert.strictEqual(pages, 0, "at the head: no page on arrival")
        const behind = yield* poll(0n)
        assert.strictEqual(pages, 1, "behind the watcher: its page on arrival")
        store.sequence.drawn = 2n
        store.committed.push(event(2n, 7))
        yield* TestClock.adjust("100 millis")
        assert.deepStrictEqual((yield* Fiber.join(head)).map((e) => e.seq), [2n], "the commit past the head reaches it")
        assert.deepStrictEqual((yield* Fiber.join(behind)).map((e) => e.seq), [2n])
        assert.strictEqual(pages, 3)

        down = true
        yield* TestClock.adjust("100 millis") // a failed look
        const whileDown = yield* poll(2n)
        assert.strictEqual(pages, 4, "while the watcher fails, the page is read on arrival")
        yield* TestClock.adjust("5 seconds")
        assert.deepStrictEqual(yield* Fiber.join(whileDown), [])
      }).pipe(Effect.provide(CommitWatch.layer.pipe(Layer.provide([flaky, config]))))
    }))
})
