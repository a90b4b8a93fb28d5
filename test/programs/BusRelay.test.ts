/**
 * The bus relay's own logic, in milliseconds: an event log in memory with the
 * same no-skip reads as PostgreSQL's (commit order, nothing below a cursor
 * appears later), the publish ledger as the hot path leaves it, a memory bus
 * scripted to fail as RabbitMQ can, and the TestClock. The relay over the
 * real PostgreSQL and RabbitMQ, through outages and a killed process, is in
 * test/faults/TierFaults.test.ts.
 */
import { assert, describe, it } from "@effect/vitest"
import { Array, Duration, Effect, Exit, Fiber, Metric, Option, Schema, Scope } from "effect"
import { TestClock } from "effect/testing"
import { eventKey, eventKind, type MessageEvent, TelegramMessage } from "../../src/domain/Message.ts"
import * as MemoryEventBus from "../../src/layers/MemoryEventBus.ts"
import { runBusRelay } from "../../src/programs/BusRelay.ts"
import { makePublishLedger, type PublishLedger } from "../../src/programs/PublishLedger.ts"
import { makeTierHealth } from "../../src/programs/TierHealth.ts"
import { BusOutbox } from "../../src/services/BusOutbox.ts"
import { BusUnavailable } from "../../src/services/EventBus.ts"
import { MessageQuery, QueryError, type StoredEvent } from "../../src/services/MessageQuery.ts"
import * as Metrics from "../../src/services/Metrics.ts"
import { created, deleted, edited, freshChannelId, makeMessage } from "../support/TestEvents.ts"

const exchange = "relay-test"
const encodeMessage = Schema.encodeSync(TelegramMessage)

/** Created events of one fresh channel. */
const events = (count: number) => {
  const channelId = freshChannelId()
  return Array.makeBy(count, (index) => created(makeMessage(channelId, index + 1), 0))
}

const toStored = (event: MessageEvent, seq: bigint): StoredEvent => {
  const receivedAt = new Date(event.receivedAt).toISOString()
  return event._tag === "MessageDeleted"
    ? {
      seq,
      kind: "deleted",
      key: eventKey(event),
      channelId: event.channelId,
      messageId: event.messageId,
      version: null,
      message: null,
      deletedAt: new Date(event.deletedAt).toISOString(),
      receivedAt
    }
    : {
      seq,
      kind: eventKind(event),
      key: eventKey(event),
      channelId: event.message.channelId,
      messageId: event.message.messageId,
      version: event._tag === "MessageCreated" ? 0 : event.message.editDate ?? 0,
      message: encodeMessage(event.message),
      deletedAt: null,
      receivedAt
    }
}

/**
 * The committed event log and the relay's marks, as PostgreSQL keeps them:
 * reads return events in commit order after a cursor, so an event committed
 * later always has a higher seq than any already read.
 */
const makeEventLog = () => {
  const rows: Array<StoredEvent> = []
  const marks = new Map<string, bigint>([[exchange, 0n]])
  const after = (seq: bigint, limit: number) => rows.filter((row) => row.seq > seq).slice(0, limit)
  /** When set, reading whole events fails as PostgreSQL going away between two statements would. */
  let eventsFail = false
  const outbox = BusOutbox.of({
    readMark: (name) => Effect.sync(() => Option.fromNullishOr(marks.get(name))),
    saveMark: (name, seq) => Effect.sync(() => void marks.set(name, seq)),
    newestSeq: Effect.sync(() => rows.at(-1)?.seq ?? 0n),
    countAfter: (seq, cap) => Effect.sync(() => Math.min(cap, rows.filter((row) => row.seq > seq).length))
  })
  // The relay reads these two; the rest of the service is the API's.
  const query = {
    eventKeys: ({ after: seq, limit }) =>
      Effect.sync(() => after(seq, limit).map(({ key, receivedAt, seq }) => ({ key, receivedAt, seq }))),
    events: ({ after: seq, limit }) =>
      eventsFail
        ? Effect.fail(new QueryError({ operation: "events", cause: "connection terminated" }))
        : Effect.sync(() => after(seq, limit))
  } satisfies Partial<MessageQuery["Service"]> as unknown as MessageQuery["Service"]
  return {
    commit: (batch: ReadonlyArray<MessageEvent>) =>
      batch.map((event) => {
        const row = toStored(event, BigInt(rows.length + 1))
        rows.push(row)
        return row
      }),
    mark: () => marks.get(exchange),
    failEvents: (next: boolean) => void (eventsFail = next),
    outbox,
    query
  }
}

/** Switches the bus between confirming and failing, as a broker stopped and started. */
const switchableBus = () => {
  let down = false
  return {
    set: (next: boolean) => void (down = next),
    beforePublish: () =>
      Effect.suspend(() =>
        down ? Effect.fail(new BusUnavailable({ operation: "publish", cause: "connection refused" })) : Effect.void
      )
  }
}

interface Setup {
  readonly log: ReturnType<typeof makeEventLog>
  readonly ledger: PublishLedger
  readonly bus?: MemoryEventBus.MemoryBusOptions
  readonly pageSize?: number
  readonly readAhead?: number
}

const grace = Duration.seconds(16)

/**
 * A relay in a scope of its own. `stop` is a clean shutdown (its finalizer
 * saves the mark); `kill` interrupts it without one, as SIGKILL would.
 */
const startRelay = (setup: Setup) =>
  Effect.gen(function*() {
    const { bus, memory } = yield* MemoryEventBus.make(setup.bus)
    const rabbitmq = yield* makeTierHealth({
      tier: "rabbitmq",
      failures: Metrics.rabbitmqFailures,
      downMessage: "RabbitMQ unavailable",
      upMessage: "RabbitMQ available again"
    })
    const scope = yield* Scope.make()
    const fiber = yield* runBusRelay({
      bus,
      ledger: setup.ledger,
      rabbitmq,
      exchange,
      interval: Duration.millis(250),
      pageSize: setup.pageSize ?? 100,
      readAhead: setup.readAhead ?? 1_000,
      grace
    }).pipe(
      Scope.provide(scope),
      Effect.provideService(BusOutbox, setup.log.outbox),
      Effect.provideService(MessageQuery, setup.log.query),
      Effect.forkDetach
    )
    return {
      published: memory.published,
      rabbitmq,
      stop: Fiber.interrupt(fiber).pipe(Effect.andThen(Scope.close(scope, Exit.void))),
      kill: Fiber.interrupt(fiber)
    }
  })

/** Moves the clock `millis` in 50 ms steps, letting the relay's fibers run at each. */
const run = (millis: number) =>
  Effect.gen(function*() {
    for (let elapsed = 0; elapsed < millis; elapsed += 50) {
      yield* TestClock.adjust("50 millis")
      for (let turn = 0; turn < 5; turn++) yield* Effect.yieldNow
    }
  })

const gauge = (metric: Metric.Gauge<number>) => Metric.value(metric).pipe(Effect.map((state) => state.value))
const counter = (metric: Metric.Counter<number>) => Metric.value(metric).pipe(Effect.map((state) => state.count))

const keysOf = (published: ReadonlyArray<MessageEvent>) => published.map(eventKey)

/**
 * A log whose first event (after `before`, all confirmed by the hot path) is
 * still being published by the hot path, with `behind` events after it that
 * the hot path had no room for.
 */
const oneInFlight = (behind: number, before: ReadonlyArray<MessageEvent> = []) => {
  const log = makeEventLog()
  const ledger = makePublishLedger()
  for (const event of before) ledger.settled(eventKey(event), true, 0)
  const [inFlight, ...skipped] = events(behind + 1) as [MessageEvent, ...Array<MessageEvent>]
  ledger.attempting(eventKey(inFlight), 0)
  const rows = log.commit([...before, inFlight, ...skipped])
  return { log, ledger, inFlight, skipped, rows }
}

describe("BusRelay", () => {
  it.effect("publishes, once and as stored, every committed event the hot path did not get confirmed, and moves its mark to the newest", () =>
    Effect.gen(function*() {
      const log = makeEventLog()
      const ledger = makePublishLedger()
      const channelId = freshChannelId()
      const message = makeMessage(channelId, 1)
      const confirmedByHotPath = events(150)
      const mixed = [
        created(message, 1_000),
        edited(message, 1_763_000_500, "edited text", 2_000),
        deleted(channelId, 1, 3_000)
      ]
      for (const event of confirmedByHotPath) ledger.settled(eventKey(event), true, 0)
      const rows = log.commit([...confirmedByHotPath.slice(0, 70), ...mixed, ...confirmedByHotPath.slice(70)])
      const publishedBefore = yield* counter(Metrics.busRelayPublished)

      const relay = yield* startRelay({ log, ledger })
      yield* run(1_000)

      assert.deepStrictEqual(keysOf(relay.published), mixed.map(eventKey))
      assert.deepStrictEqual(relay.published.map((event) => event._tag), ["MessageCreated", "MessageEdited", "MessageDeleted"])
      assert.deepStrictEqual(relay.published[1], mixed[1], "an edit is published as the hot path would have")
      assert.strictEqual((yield* counter(Metrics.busRelayPublished)) - publishedBefore, 3)
      assert.strictEqual(log.mark(), rows.at(-1)!.seq)
      assert.strictEqual(yield* gauge(Metrics.busUnpublished), 0)
      assert.strictEqual(ledger.size(), 0, "the ledger forgets what the relay has passed")

      // Stopped cleanly and started again: nothing is published twice.
      yield* relay.stop
      const again = yield* startRelay({ log, ledger })
      yield* run(1_000)
      assert.deepStrictEqual(again.published, [])
      yield* again.stop
    }))

  it.effect("publishes past an event the hot path is still publishing, keeps its mark before it, and passes it once confirmed", () =>
    Effect.gen(function*() {
      const { inFlight, ledger, log, rows, skipped } = oneInFlight(1_000)

      const relay = yield* startRelay({ log, ledger, pageSize: 100 })
      yield* run(2_000)
      // The hot path had no room for the 1,000 behind it: they do not wait for its confirm.
      assert.deepStrictEqual(keysOf(relay.published), skipped.map(eventKey))
      assert.strictEqual(log.mark(), 0n, "the mark stays before the event still in flight")
      assert.strictEqual(yield* gauge(Metrics.busUnpublished), 1)

      ledger.settled(eventKey(inFlight), true, 2_000)
      yield* run(500)
      assert.strictEqual(log.mark(), rows.at(-1)!.seq)
      assert.strictEqual(yield* gauge(Metrics.busUnpublished), 0)
      assert.strictEqual(relay.published.length, 1_000, "nothing was published twice")
      yield* relay.stop
    }))

  it.effect("killed while an event is in flight, a new relay publishes again only what it had published past its mark", () =>
    Effect.gen(function*() {
      const { inFlight, ledger, log, rows, skipped } = oneInFlight(300, events(50))

      const dead = yield* startRelay({ log, ledger })
      yield* run(1_000)
      assert.strictEqual(dead.published.length, 300)
      assert.strictEqual(log.mark(), rows[49]!.seq)
      yield* dead.kill

      // The new process knows nothing of what the old one published.
      const fresh = yield* startRelay({ log, ledger: makePublishLedger() })
      yield* run(1_000)
      assert.deepStrictEqual(keysOf(fresh.published), [inFlight, ...skipped].map(eventKey))
      assert.strictEqual(log.mark(), rows.at(-1)!.seq)
      yield* fresh.stop
    }))

  it.effect("reads ahead no further than its bound while the hot path's publishes are in flight, and publishes them itself after the grace period", () =>
    Effect.gen(function*() {
      const log = makeEventLog()
      const ledger = makePublishLedger()
      const inFlight = events(400)
      const skipped = events(200)
      for (const event of inFlight) ledger.attempting(eventKey(event), 0)
      const rows = log.commit([...inFlight, ...skipped])

      const relay = yield* startRelay({ log, ledger, pageSize: 100, readAhead: 300 })
      yield* run(3_000)
      assert.deepStrictEqual(relay.published, [], "the events behind the bound are not read yet")
      assert.strictEqual(yield* gauge(Metrics.busUnpublished), 600)
      assert.strictEqual(log.mark(), 0n)

      // Past the grace period the hot path's publishes are presumed lost.
      yield* run(Duration.toMillis(grace))
      assert.deepStrictEqual(keysOf(relay.published), [...inFlight, ...skipped].map(eventKey))
      assert.strictEqual(log.mark(), rows.at(-1)!.seq)
      assert.strictEqual(yield* gauge(Metrics.busUnpublished), 0)
      yield* relay.stop
    }))

  it.effect("with RabbitMQ down publishes nothing and keeps its mark; once it is up, publishes every event once, in commit order", () =>
    Effect.gen(function*() {
      const log = makeEventLog()
      const ledger = makePublishLedger()
      const broker = switchableBus()
      broker.set(true)
      const outage = events(1_200)
      const rows = log.commit(outage)
      const failuresBefore = yield* counter(Metrics.rabbitmqFailures)

      const relay = yield* startRelay({ log, ledger, bus: { beforePublish: broker.beforePublish } })
      yield* run(2_000)
      assert.deepStrictEqual(relay.published, [])
      assert.strictEqual(log.mark(), 0n)
      assert.strictEqual(yield* gauge(Metrics.busUnpublished), 1_200)
      assert.isFalse(relay.rabbitmq.isUp())
      assert.isAbove((yield* counter(Metrics.rabbitmqFailures)) - failuresBefore, 0)

      broker.set(false)
      yield* run(2_000)
      assert.deepStrictEqual(keysOf(relay.published), outage.map(eventKey))
      assert.strictEqual(log.mark(), rows.at(-1)!.seq)
      assert.strictEqual(yield* gauge(Metrics.busUnpublished), 0)
      assert.isTrue(relay.rabbitmq.isUp())
      yield* relay.stop
    }))

  it.effect("loses track of nothing it read when PostgreSQL fails between its reads, and publishes it all once it answers", () =>
    Effect.gen(function*() {
      const { inFlight, ledger, log, rows, skipped } = oneInFlight(300)
      log.failEvents(true)

      const relay = yield* startRelay({ log, ledger })
      yield* run(1_000)
      assert.deepStrictEqual(relay.published, [])
      assert.strictEqual(log.mark(), 0n)

      log.failEvents(false)
      yield* run(1_000)
      assert.deepStrictEqual(keysOf(relay.published), skipped.map(eventKey))
      ledger.settled(eventKey(inFlight), true, 2_000)
      yield* run(500)
      assert.strictEqual(log.mark(), rows.at(-1)!.seq)
      yield* relay.stop
    }))

  it.effect("publishes what commits while an earlier event is still in flight", () =>
    Effect.gen(function*() {
      const { ledger, log } = oneInFlight(10)
      const relay = yield* startRelay({ log, ledger })
      yield* run(1_000)
      assert.strictEqual(relay.published.length, 10)
      const later = events(5)
      log.commit(later)
      yield* run(1_000)
      assert.deepStrictEqual(keysOf(relay.published).slice(10), later.map(eventKey))
      yield* relay.stop
    }))

  it.effect("looks each event it waits on up in the ledger once, not at every pass, and still sees the hot path's later outcomes", () =>
    Effect.gen(function*() {
      const log = makeEventLog()
      const real = makePublishLedger()
      let lookups = 0
      const ledger: PublishLedger = { ...real, entry: (key) => (lookups++, real.entry(key)) }
      const inFlight = events(400)
      for (const event of inFlight) ledger.attempting(eventKey(event), 0)
      const rows = log.commit(inFlight)

      const relay = yield* startRelay({ log, ledger })
      yield* run(3_000)
      assert.deepStrictEqual(relay.published, [])
      assert.strictEqual(lookups, 400, "one lookup per event over a dozen passes")

      // The hot path's outcomes arrive: all confirmed but one, whose publish failed.
      const [failed, ...confirmed] = inFlight as [MessageEvent, ...Array<MessageEvent>]
      for (const event of confirmed) ledger.settled(eventKey(event), true, 3_000)
      ledger.settled(eventKey(failed), false, 3_000)
      yield* run(1_000)
      assert.deepStrictEqual(keysOf(relay.published), [eventKey(failed)])
      assert.strictEqual(log.mark(), rows.at(-1)!.seq)
      assert.strictEqual(lookups, 400)
      yield* relay.stop
    }))

  it.effect("the ledger keeps one entry object per key: a new attempt after a failure is seen through it and ages from then", () =>
    Effect.sync(() => {
      const ledger = makePublishLedger()
      ledger.attempting("a", 1)
      ledger.attempting("b", 2)
      const entry = ledger.entry("a")!
      ledger.settled("a", false, 3)
      assert.strictEqual(entry.confirmed, false)
      ledger.attempting("a", 4)
      assert.strictEqual(ledger.entry("a"), entry)
      assert.deepStrictEqual([entry.confirmed, entry.at], [undefined, 4])
      // Pruned by age: "a" was attempted again after "b", so "b" goes first.
      ledger.prune(3)
      assert.strictEqual(ledger.entry("b"), undefined)
      assert.strictEqual(ledger.entry("a"), entry)
      ledger.settled("a", true, 5)
      ledger.attempting("a", 6)
      assert.deepStrictEqual([entry.confirmed, entry.at], [true, 4], "a confirm is never undone")
    }))
})
