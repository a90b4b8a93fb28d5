/**
 * The durable path: a bounded queue in front of a supervised writer fiber that
 * commits events to the `MessageStore` in batches (flushed at `batchSize` rows
 * or `flushInterval` after a batch's first row, whichever comes first).
 *
 * Nothing accepted is dropped: a full queue makes the receiver wait; a failed
 * write is retried with capped exponential backoff for as long as it takes;
 * a row PostgreSQL refuses outright is isolated by bisecting its batch and
 * logged whole; and closing the writer (SIGTERM) commits what is queued first.
 */
import { Array, type Cause, type Duration, Effect, Fiber, Metric, Queue, Schedule, Stream } from "effect"
import { encodeMessageEventJson, eventKey, type MessageEvent } from "../domain/Message.ts"
import { MessageStore, type StoreError, type WriteSummary } from "../services/MessageStore.ts"
import * as Metrics from "../services/Metrics.ts"
import { makeTierHealth } from "./TierHealth.ts"

export interface BatchWriterOptions {
  readonly batchSize: number
  readonly flushInterval: Duration.Duration
  readonly queueCapacity: number
  /** Batches written at once. */
  readonly writers: number
  /** How long closing may take to commit what is still queued. */
  readonly shutdownTimeout: Duration.Duration
  /** Called after each batch commits, with its events. */
  readonly onCommitted: (events: Array.NonEmptyReadonlyArray<MessageEvent>) => Effect.Effect<void>
}

export interface BatchWriter {
  /** Queues an event for the database; waits while the queue is full. */
  readonly offer: (event: MessageEvent) => Effect.Effect<void>
  /** Events accepted and not yet committed. */
  readonly pending: Effect.Effect<number>
}

/** Capped at 5 s so a recovered database is used again within seconds. */
const retryTransient = Schedule.min([Schedule.exponential("100 millis"), Schedule.spaced("5 seconds")]).pipe(
  Schedule.jittered,
  Schedule.setInputType<StoreError>(),
  Schedule.while(({ input }) => input.retryable)
)

export const makeBatchWriter = Effect.fnUntraced(function*(options: BatchWriterOptions) {
  const store = yield* MessageStore
  const health = yield* makeTierHealth({
    tier: "postgres",
    failures: Metrics.databaseFailures,
    downMessage: "PostgreSQL unavailable, holding accepted events in memory and retrying",
    upMessage: "PostgreSQL available again, committing held events"
  })
  const queue = yield* Queue.bounded<MessageEvent, Cause.Done>(options.queueCapacity)

  const write = (batch: Array.NonEmptyReadonlyArray<MessageEvent>): Effect.Effect<WriteSummary> =>
    store.writeBatch(batch).pipe(
      Effect.tapError((error) => (error.retryable ? health.failed(error) : Effect.void)),
      Effect.retry(retryTransient),
      Effect.tap(() => health.succeeded),
      Effect.catchTag("StoreError", (error) => onRefused(batch, error))
    )

  // An error that looks final is only believed while the database answers:
  // if it does not, this is an outage after all, and the batch waits for it.
  const onRefused = (batch: Array.NonEmptyReadonlyArray<MessageEvent>, error: StoreError) =>
    store.ping.pipe(
      Effect.timeout("2 seconds"),
      Effect.matchEffect({
        onSuccess: () => isolateRefused(batch, error),
        onFailure: () => health.failed(error).pipe(Effect.andThen(Effect.sleep("1 second")), Effect.andThen(write(batch)))
      })
    )

  // A batch PostgreSQL refuses as data is split until the refused event stands
  // alone; the rest commits. The refused one is logged whole, so it can be
  // replayed once the cause is fixed.
  const isolateRefused = (
    batch: Array.NonEmptyReadonlyArray<MessageEvent>,
    error: StoreError
  ): Effect.Effect<WriteSummary> => {
    if (batch.length === 1) {
      return Effect.logError("PostgreSQL refused an event; it is kept in this log line").pipe(
        Effect.annotateLogs({ key: eventKey(batch[0]), error: error.message, event: encodeMessageEventJson(batch[0]) }),
        Effect.andThen(Metric.update(Metrics.eventsRejected.pipe(Metric.withAttributes({ reason: "database" })), 1)),
        Effect.as({ inserted: 0, duplicates: 0 })
      )
    }
    const middle = Math.ceil(batch.length / 2)
    const left = batch.slice(0, middle) as unknown as Array.NonEmptyReadonlyArray<MessageEvent>
    const right = batch.slice(middle) as unknown as Array.NonEmptyReadonlyArray<MessageEvent>
    return Effect.zipWith(write(left), write(right), (a, b) => ({
      inserted: a.inserted + b.inserted,
      duplicates: a.duplicates + b.duplicates
    }))
  }

  const commit = (batch: Array.NonEmptyReadonlyArray<MessageEvent>) =>
    write(batch).pipe(
      Effect.andThen(Metric.update(Metrics.eventsCommitted, batch.length)),
      Effect.andThen(Metric.update(Metrics.writeBatchSize, batch.length)),
      Effect.andThen(Metric.update(Metrics.writeQueueDepth, Queue.sizeUnsafe(queue))),
      Effect.andThen(options.onCommitted(batch)),
      Effect.withSpan("BatchWriter.commit", { attributes: { "batch.size": batch.length } })
    )

  const writer = yield* Stream.fromQueue(queue).pipe(
    Stream.groupedWithin(options.batchSize, options.flushInterval),
    Stream.mapEffect((batch) => (Array.isArrayNonEmpty(batch) ? commit(batch) : Effect.void), { concurrency: options.writers, unordered: true }),
    Stream.runDrain,
    Effect.forkScoped
  )

  // Runs before the writer fiber is interrupted (finalizers run in reverse):
  // ending the queue lets the stream flush everything already accepted.
  yield* Effect.addFinalizer(() =>
    Effect.gen(function*() {
      const left = Queue.sizeUnsafe(queue)
      yield* Effect.logInfo("Shutting down: committing queued events").pipe(Effect.annotateLogs({ queued: left }))
      yield* Queue.end(queue)
      yield* Fiber.await(writer).pipe(
        Effect.timeout(options.shutdownTimeout),
        Effect.catchTag("TimeoutError", () =>
          Effect.logError("Shutdown timed out before every queued event was committed").pipe(
            Effect.annotateLogs({ uncommitted: Queue.sizeUnsafe(queue) })
          ))
      )
    })
  )

  return {
    offer: (event: MessageEvent) =>
      Queue.offer(queue, event).pipe(
        Effect.tap((accepted) => accepted ? Effect.void : Effect.die(new Error("BatchWriter is closed"))),
        Effect.asVoid
      ),
    pending: Queue.size(queue)
  } satisfies BatchWriter
})
