/**
 * The optional tiers' path: the Redis dedup check and cache write, then the
 * RabbitMQ publish, for every event, off the receiver and off the database
 * path. Supervised worker fibers take whatever events are waiting (up to
 * `maxBatch`) and handle them together: one Redis round trip for all of them,
 * then one batch of publishes whose confirms are awaited together, on a fiber
 * of its own, so the worker takes the next events meanwhile. Under light
 * load a batch is a single event, so nothing waits to fill one; under heavy
 * load, the per-event cost of fibers and round trips is shared.
 *
 * The publish follows the dedup verdict, so an event Telegram redelivers is
 * not published twice; when Redis cannot answer, the event is published
 * anyway (at-least-once: consumers dedupe on `message_id`). Each tier is
 * bounded by its own timeout (`redis.timeout`, `rabbitmq.publishTimeout`) and
 * retried on a short schedule; what still fails is counted per event.
 *
 * The hot path is for latency; the bus relay (BusRelay.ts) is for
 * completeness. Every outcome goes into the publish ledger, and what the hot
 * path could not get confirmed is published by the relay from PostgreSQL.
 * So the queue is bounded (events it has no room for are counted and left to
 * the relay), so are the publishes awaiting confirms (past the bound a batch
 * is cached but its publish is left to the relay: the Redis step never waits
 * for the bus), and while RabbitMQ is down the hot path does not publish at all:
 * the relay alone probes the broker and publishes in commit order, which
 * keeps duplicates to the publishes in flight when the outage began.
 */
import { type Array as Arr, Cause, Clock, type Context, Duration, Effect, Exit, Fiber, FiberSet, Metric, PubSub, Queue, Random, Schedule, Semaphore } from "effect"
import { eventKey, type MessageEvent } from "../domain/Message.ts"
import { retryAfterFailure } from "../domain/RetryAfterFailure.ts"
import type { EventBus } from "../services/EventBus.ts"
import type { DedupVerdict, MessageCache } from "../services/MessageCache.ts"
import * as Metrics from "../services/Metrics.ts"
import type { IngestProgress } from "./IngestProgress.ts"
import * as MessageTrace from "./MessageTrace.ts"
import { observeLatenciesUnsafe } from "./ObserveLatencies.ts"
import type { PublishLedger } from "./PublishLedger.ts"
import type { TierHealth } from "./TierHealth.ts"

export interface HotPathOptions {
  readonly cache: MessageCache["Service"]
  readonly bus: EventBus["Service"]
  readonly redis: TierHealth
  readonly rabbitmq: TierHealth
  readonly progress: PubSub.PubSub<IngestProgress>
  readonly ledger: PublishLedger
  /** Events waiting for a worker, at most. */
  readonly capacity: number
  /**
   * Events published and waiting for their confirms, at most. Past it a
   * worker does not wait: the batch is cached and its publish left to the
   * relay (`hot_path_publish_skipped_total`).
   */
  readonly publishCapacity: number
  /** At shutdown, how long the work already queued may take. */
  readonly shutdownTimeout: Duration.Duration
}

export interface HotPath {
  /** Queues an event's cache and bus work; never waits (a full queue leaves the event to the relay). */
  readonly offer: (entry: MessageTrace.Traced) => Effect.Effect<void>
  /**
   * `offer` with the time already read, for a batch of events: false when
   * the queue was full and the event is left to the relay, which the caller
   * counts in `hot_path_skipped_total` (`countSkipped`).
   */
  readonly offerUnsafe: (entry: MessageTrace.Traced, now: number) => boolean
  readonly countSkipped: (skipped: number) => Effect.Effect<void>
}

/** Events handled together by one worker, at most. */
const maxBatch = 256
/**
 * Workers: while one waits for Redis's reply, the others take the next
 * events, so one slow round trip does not hold the events behind it.
 */
const workers = 16
/** A short retry: a blip is absorbed, an outage falls through fast. */
const retry = Schedule.exponential("20 millis").pipe(Schedule.jittered, Schedule.upTo({ times: 2 }))

/**
 * The bus's short retry, for the events of a batch not confirmed: two more
 * attempts, after 40 then 80 ms, each anywhere from half to one and a half
 * times that, so workers that failed together do not retry together.
 */
const publishRetries = Schedule.exponential("40 millis").pipe(
  Schedule.modifyDelay(({ duration }) => Effect.map(Random.next, (random) => Duration.millis(Duration.toMillis(duration) * (0.5 + random)))),
  Schedule.upTo({ times: 2 })
)

export const makeHotPath = Effect.fnUntraced(function*(options: HotPathOptions) {
  const { bus, cache, ledger, progress, rabbitmq, redis } = options
  // The receiver never waits on the optional tiers: a full queue drops the
  // event from the hot path only (it is committed, and the relay publishes it).
  const queue = yield* Queue.bounded<MessageTrace.Traced, Cause.Done>(options.capacity)
  const clock = yield* Clock.Clock
  const publishing = yield* Semaphore.make(options.publishCapacity)
  const confirming = yield* FiberSet.make()

  /** The verdict per event, or "unknown" for all when Redis could not answer (with its error). */
  const rememberAll = (events: Arr.NonEmptyReadonlyArray<MessageEvent>) =>
    Effect.gen(function*() {
      let attempts = 0
      let began = 0
      const verdicts = yield* Effect.suspend(() => {
        attempts++
        began = redis.began()
        return cache.rememberAll(events)
      }).pipe(retryAfterFailure(retry))
      yield* redis.succeeded(began)
      // An attempt that timed out or lost its connection may still have run in
      // Redis, so after a retry "duplicate" may be our own first attempt.
      return {
        cached: true,
        error: undefined,
        verdicts: attempts > 1
          ? verdicts.map((verdict) => (verdict === "duplicate" ? "unknown" as const : verdict))
          : verdicts as ReadonlyArray<DedupVerdict | "unknown">
      }
    }).pipe(
      Effect.catch((error) =>
        redis.failed(error, events.length).pipe(
          Effect.as({ cached: false, error, verdicts: events.map(() => "unknown" as const) })
        )
      )
    )

  /** Whether each event was confirmed; failures are retried, then counted per event and left to the relay. */
  const publishAll = (entries: ReadonlyArray<MessageTrace.Traced>) =>
    Effect.gen(function*() {
      const confirmed = new Set<MessageEvent>()
      if (!rabbitmq.isUp()) return confirmed
      let waiting = entries
      let began = 0
      let lastError: { readonly message: string } | undefined
      // Fails while some events are not confirmed: only those are published again.
      const attempt = Effect.gen(function*() {
        began = rabbitmq.began()
        const outcomes = yield* bus.publishAll(
          waiting.map((entry) => entry.event) as unknown as Arr.NonEmptyReadonlyArray<MessageEvent>,
          waiting.map((entry) => entry.trace?.span)
        )
        const failed: Array<MessageTrace.Traced> = []
        outcomes.forEach((error, index) => {
          if (error === undefined) confirmed.add(waiting[index]!.event)
          else (failed.push(waiting[index]!), lastError = error)
        })
        waiting = failed
        if (failed.length > 0) return yield* Effect.fail(lastError!)
      })
      if (waiting.length > 0) yield* attempt.pipe(retryAfterFailure(publishRetries), Effect.ignore)
      if (waiting.length > 0 && lastError !== undefined) yield* rabbitmq.failed(lastError, waiting.length)
      else if (entries.length > 0) yield* rabbitmq.succeeded(began)
      return confirmed
    })

  /**
   * After the Redis step: the publish, the wait for its confirms, and the
   * bookkeeping. It runs on a fiber of its own, so the worker takes the next
   * events while the broker syncs these to disk.
   */
  const finish = Effect.fnUntraced(function*(
    entries: Arr.NonEmptyReadonlyArray<MessageTrace.Traced>,
    cached: boolean,
    verdicts: ReadonlyArray<DedupVerdict | "unknown">,
    publish: boolean
  ) {
    const events = entries.map((entry) => entry.event)
    const traces = entries.map((entry) => entry.trace)
    const toPublish = publish ? entries.filter((_, index) => verdicts[index] !== "duplicate") : []
    const published = toPublish.length > 0 ? yield* publishAll(toPublish) : new Set<MessageEvent>()
    const at = yield* Clock.currentTimeMillis
    for (const event of events) ledger.settled(eventKey(event), published.has(event), at)
    for (const trace of traces) MessageTrace.hotPathDone(trace, clock)
    let duplicates = 0
    let fresh = 0
    const done: Array<IngestProgress> = []
    events.forEach((event, index) => {
      const verdict = verdicts[index]!
      if (verdict === "duplicate") duplicates++
      else if (cached && verdict === "new") fresh++
      done.push({ _tag: "HotPathDone", event, verdict, cached, published: published.has(event), at })
    })
    // Plain calls on the fiber's context: this runs for every batch, and at low rates a batch is one event.
    yield* Effect.contextWith((context: Context.Context<never>) => {
      Metrics.eventsDuplicate.updateUnsafe(duplicates, context)
      Metrics.eventsCached.updateUnsafe(fresh, context)
      Metrics.eventsPublished.updateUnsafe(published.size, context)
      observeLatenciesUnsafe(Metrics.hotPathLatency, events, at, context)
      return PubSub.publishAll(progress, done)
    })
  })

  // No span of its own: each event's work is a span in its message's trace (MessageTrace.ts).
  const handle = Effect.fnUntraced(function*(entries: Arr.NonEmptyReadonlyArray<MessageTrace.Traced>) {
    const events = entries.map((entry) => entry.event) as unknown as Arr.NonEmptyReadonlyArray<MessageEvent>
    const traces = entries.map((entry) => entry.trace)
    const redisSpans = yield* MessageTrace.startChildren(traces, "MessageCache.remember", {
      "db.system.name": "redis",
      "db.operation.name": "rememberAll",
      "db.operation.batch.size": events.length
    })
    const { cached, error, verdicts } = yield* rememberAll(events)
    MessageTrace.endChildren(redisSpans, clock, (index, span) => {
      span.attribute("cache.verdict", verdicts[index])
      return error === undefined ? Exit.void : Exit.fail(error)
    })
    // A persistent message's confirm waits for RabbitMQ's disk sync (tens of
    // milliseconds, seconds on a busy broker), so the worker never waits for
    // it, nor for room to publish: waiting there held the Redis step of every
    // event behind it (the cache fell seconds behind at 5,000 msg/s). Past
    // the bound the relay publishes these events from PostgreSQL.
    const permits = Math.min(entries.length, options.publishCapacity)
    if (!(yield* Semaphore.takeIfAvailable(publishing, permits))) {
      yield* Metric.update(Metrics.hotPathPublishSkipped, verdicts.filter((verdict) => verdict !== "duplicate").length)
      return yield* finish(entries, cached, verdicts, false)
    }
    // Started at once, so the publishes leave before the worker takes its next events.
    yield* FiberSet.run(
      confirming,
      finish(entries, cached, verdicts, true).pipe(Effect.ensuring(Semaphore.release(publishing, permits)))
    )
  })

  const worker = Queue.takeBetween(queue, 1, maxBatch).pipe(
    Effect.flatMap((entries) => handle(entries as unknown as Arr.NonEmptyReadonlyArray<MessageTrace.Traced>)),
    Effect.forever,
    Effect.catchIf(Cause.isDone, () => Effect.void)
  )
  const running = yield* Effect.forEach(Array.from({ length: workers }), () => Effect.forkScoped(worker))

  // Runs before the workers are interrupted (finalizers run in reverse): the
  // queue ends, the workers finish what is in it and the confirms they left
  // arrive, bounded by the timeout.
  yield* Effect.addFinalizer(() =>
    Queue.end(queue).pipe(
      Effect.andThen(Effect.forEach(running, (fiber) => Fiber.await(fiber), { discard: true })),
      Effect.andThen(FiberSet.awaitEmpty(confirming)),
      Effect.timeout(options.shutdownTimeout),
      Effect.ignore
    )
  )

  const offerUnsafe = (entry: MessageTrace.Traced, now: number) => {
    if (Queue.offerUnsafe(queue, entry)) {
      ledger.attempting(eventKey(entry.event), now, entry.trace?.span)
      return true
    }
    // The relay publishes it; its publish still joins the message's trace.
    ledger.settled(eventKey(entry.event), false, now, entry.trace?.span)
    MessageTrace.hotPathDone(entry.trace, clock, true)
    return false
  }
  const countSkipped = (skipped: number) => skipped > 0 ? Metric.update(Metrics.hotPathSkipped, skipped) : Effect.void

  return {
    offer: (entry: MessageTrace.Traced) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => offerUnsafe(entry, now) ? Effect.void : countSkipped(1)),
    offerUnsafe,
    countSkipped
  } satisfies HotPath
})
