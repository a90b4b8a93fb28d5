/**
 * The durable path: a bounded queue in front of a supervised writer that
 * commits events to the `MessageStore` in batches (flushed at `batchSize` rows
 * or `flushInterval` after a batch's first row, whichever comes first).
 *
 * Nothing accepted is dropped, and the writer cannot die or stall silently:
 * - a full queue makes the receiver wait;
 * - every failure of a write (a typed error, a defect such as a failed
 *   ROLLBACK inside the SQL client, a socket that never answers) is retried
 *   with capped exponential backoff for as long as it takes, and each attempt
 *   has a hard client-side deadline that does not wait for the driver;
 * - a row PostgreSQL refuses outright (while it answers pings) is isolated by
 *   bisecting its batch and logged whole;
 * - should the writer fiber end anyway while the gateway runs, it is
 *   restarted, the batches it held are written again, and that is logged at
 *   error level and counted (`ingest_writer_restarts_total`);
 * - closing the writer (SIGTERM) commits what is queued first, within
 *   `shutdownTimeout`, and reports how many events it could not commit.
 */
import { Array, Cause, Clock, type Context, Duration, Effect, Fiber, Metric, Option, Queue, Runtime, Schedule, Stream } from "effect"
import { encodeMessageEventJson, eventKey, type MessageEvent } from "../domain/Message.ts"
import { retryAfterFailure } from "../domain/RetryAfterFailure.ts"
import { MessageStore, StoreError, type WriteSummary } from "../services/MessageStore.ts"
import * as Metrics from "../services/Metrics.ts"
import { ExitCode } from "../services/ExitCodes.ts"
import * as MessageTrace from "./MessageTrace.ts"
import { makeTierHealth } from "./TierHealth.ts"

/** An accepted event, the source batch it belongs to (CommitTracker.ts) and its trace. */
export interface Accepted extends MessageTrace.Traced {
  readonly batch: number
}

export interface BatchWriterOptions {
  readonly batchSize: number
  readonly flushInterval: Duration.Duration
  readonly queueCapacity: number
  /** Batches written at once. */
  readonly writers: number
  /** How long closing may take to commit what is still queued. */
  readonly shutdownTimeout: Duration.Duration
  /** The most one write attempt may take, whatever the driver does. */
  readonly writeDeadline: Duration.Duration
  /** Called after each batch commits, with its events. */
  readonly onCommitted: (entries: Array.NonEmptyReadonlyArray<Accepted>) => Effect.Effect<void>
  /** Events accepted and not yet committed, for the shutdown report. */
  readonly uncommitted: () => number
}

export interface BatchWriter {
  /** Queues an event for the database; waits while the queue is full. */
  readonly offer: (entry: Accepted) => Effect.Effect<void>
  /**
   * Queues an event if the queue has room and is open, at once; false
   * otherwise, and then the caller goes through `offer` (which waits, or
   * fails on a closed writer). No Effect per event on the common path.
   */
  readonly offerUnsafe: (entry: Accepted) => boolean
  /** PostgreSQL as another loop found it (src/programs/DatabaseWait.ts), for `tier_up{tier="postgres"}`. */
  readonly observeDatabase: (reachable: boolean) => Effect.Effect<void>
}

/** Closing left accepted events uncommitted: the process must not exit 0. */
export class UncommittedAtShutdown extends Error {
  override readonly name = "UncommittedAtShutdown"
  override readonly [Runtime.errorExitCode] = ExitCode.uncommittedAtShutdown
  readonly uncommitted: number
  constructor(uncommitted: number) {
    super(`${uncommitted} accepted event(s) were not committed before ingest.shutdownTimeout`)
    this.uncommitted = uncommitted
  }
}

/**
 * Capped at 1 s, so a recovered database is used again within about a second
 * (with a 5 s cap the first write after an outage waited 2.5 s on average,
 * all of it added to the time the backlog takes to drain); never gives up.
 * Two writers retrying once a second cost the database nothing while it is down.
 */
const retryTransient = Schedule.min([Schedule.exponential("100 millis"), Schedule.spaced("1 second")]).pipe(
  Schedule.jittered,
  Schedule.setInputType<StoreError>(),
  Schedule.while(({ input }) => input.retryable)
)

/** Restarts of a writer that ended: quick, but not a hot loop. */
const restartDelay = Duration.millis(500)

/**
 * Runs `effect` on its own fiber and stops waiting for it after `duration`:
 * the attempt is interrupted in the background, so a driver that does not
 * honour interruption cannot hold the writer.
 */
const withHardDeadline = <A>(effect: Effect.Effect<A, StoreError>, duration: Duration.Duration, operation: string) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.forkDetach(effect)
    return yield* Fiber.join(fiber).pipe(
      Effect.timeoutOrElse({
        duration,
        orElse: () =>
          Effect.forkDetach(Fiber.interrupt(fiber)).pipe(
            Effect.andThen(Effect.fail(
              new StoreError({ operation, retryable: true, cause: `no answer within ${Duration.format(duration)}` })
            ))
          )
      }),
      Effect.onInterrupt(() => Effect.forkDetach(Fiber.interrupt(fiber)))
    )
  })

/** A defect (an exception inside the client, a failed rollback) is a failure like any other: retried. */
const defectsAsRetryable = (operation: string) => <A>(effect: Effect.Effect<A, StoreError>) =>
  Effect.catchCause(effect, (cause) => {
    if (Cause.hasInterruptsOnly(cause)) return Effect.failCause(cause)
    const squashed = Cause.squash(cause)
    return Effect.fail(
      squashed instanceof StoreError ? squashed : new StoreError({ operation, retryable: true, cause: squashed })
    )
  })

export const makeBatchWriter = Effect.fnUntraced(function*(options: BatchWriterOptions) {
  const store = yield* MessageStore
  const health = yield* makeTierHealth({
    tier: "postgres",
    failures: Metrics.databaseFailures,
    downMessage: "PostgreSQL unavailable, holding accepted events in memory and retrying",
    upMessage: "PostgreSQL available again, committing held events"
  })
  const queue = yield* Queue.bounded<Accepted, Cause.Done>(options.queueCapacity)
  const clock = yield* Clock.Clock
  /** Batches taken from the queue and not yet committed: written again if the writer restarts. */
  const inFlight = new Set<Array.NonEmptyReadonlyArray<Accepted>>()
  let closing = false

  const attempt = (events: Array.NonEmptyReadonlyArray<MessageEvent>) =>
    withHardDeadline(store.writeBatch(events), options.writeDeadline, "writeBatch").pipe(
      defectsAsRetryable("writeBatch")
    )

  const write = (events: Array.NonEmptyReadonlyArray<MessageEvent>): Effect.Effect<WriteSummary> => {
    let began = 0
    let startedAt = 0
    return Effect.suspend(() => {
      began = health.began()
      startedAt = clock.currentTimeMillisUnsafe()
      return attempt(events)
    }).pipe(
      Effect.tapError((error) => (error.retryable ? health.failed(error) : Effect.void)),
      retryAfterFailure(retryTransient),
      Effect.tap(() =>
        Effect.contextWith((context: Context.Context<never>) => {
          Metrics.writeDuration.updateUnsafe((clock.currentTimeMillisUnsafe() - startedAt) / 1000, context)
          return health.succeeded(began)
        })
      ),
      Effect.catch((error) => onRefused(events, error))
    )
  }

  // An error that looks final is only believed while the database answers:
  // if it does not, this is an outage after all, and the batch waits for it.
  const onRefused = (events: Array.NonEmptyReadonlyArray<MessageEvent>, error: StoreError) =>
    withHardDeadline(store.ping, Duration.seconds(2), "ping").pipe(
      defectsAsRetryable("ping"),
      Effect.matchEffect({
        onSuccess: () => isolateRefused(events, error),
        onFailure: () =>
          health.failed(error).pipe(Effect.andThen(Effect.sleep("1 second")), Effect.andThen(write(events)))
      })
    )

  // A batch PostgreSQL refuses as data is split until the refused event stands
  // alone; the rest commits. The refused one is logged whole, so it can be
  // replayed once the cause is fixed.
  const isolateRefused = (
    events: Array.NonEmptyReadonlyArray<MessageEvent>,
    error: StoreError
  ): Effect.Effect<WriteSummary> => {
    if (events.length === 1) {
      return Effect.logError("PostgreSQL refused an event; it is kept in this log line").pipe(
        Effect.annotateLogs({ key: eventKey(events[0]), error: error.message, event: encodeMessageEventJson(events[0]) }),
        Effect.andThen(Metric.update(Metrics.eventsRejected.pipe(Metric.withAttributes({ reason: "database" })), 1)),
        Effect.as({ inserted: 0, duplicates: 0 })
      )
    }
    const middle = Math.ceil(events.length / 2)
    const left = events.slice(0, middle) as unknown as Array.NonEmptyReadonlyArray<MessageEvent>
    const right = events.slice(middle) as unknown as Array.NonEmptyReadonlyArray<MessageEvent>
    return Effect.zipWith(write(left), write(right), (a, b) => ({
      inserted: a.inserted + b.inserted,
      duplicates: a.duplicates + b.duplicates
    }))
  }

  /** The commit of a batch is a trace of its own that links every (sampled) message it carries, and each of them back. */
  const commit = (batch: Array.NonEmptyReadonlyArray<Accepted>) =>
    Effect.suspend(() => {
      inFlight.add(batch)
      return write(Array.map(batch, (entry) => entry.event))
    }).pipe(
      Effect.andThen(Effect.contextWith((context: Context.Context<never>) => {
        inFlight.delete(batch)
        Metrics.eventsCommitted.updateUnsafe(batch.length, context)
        Metrics.writeBatchSize.updateUnsafe(batch.length, context)
        return options.onCommitted(batch)
      })),
      Effect.andThen(Effect.option(Effect.currentSpan)),
      Effect.map((span) => {
        for (const entry of batch) MessageTrace.committed(entry.trace, clock, Option.getOrUndefined(span))
      }),
      // No captured stack: the call site is always this line, and it would
      // be taken for every batch, tracing on or off.
      Effect.withSpan("BatchWriter.commit", {
        ...MessageTrace.batchSpanOptions(batch.map((entry) => entry.trace?.span)),
        attributes: { "batch.size": batch.length }
      }, { captureStackTrace: false })
    )

  const drainQueue = Stream.fromQueue(queue).pipe(
    Stream.groupedWithin(options.batchSize, options.flushInterval),
    Stream.mapEffect((batch) => (Array.isArrayNonEmpty(batch) ? commit(batch) : Effect.void), {
      concurrency: options.writers,
      unordered: true
    }),
    Stream.runDrain
  )

  /** The writer, restarted whenever it ends before the queue is closed. */
  const supervised: Effect.Effect<void> = Effect.gen(function*() {
    while (true) {
      const exit = yield* Effect.exit(drainQueue)
      if (closing && exit._tag === "Success") return
      const held = [...inFlight]
      inFlight.clear()
      yield* Metric.update(Metrics.writerRestarts, 1)
      yield* Effect.logError("Database writer ended unexpectedly; restarting it and writing its batches again").pipe(
        Effect.annotateLogs({
          cause: exit._tag === "Failure" ? Cause.pretty(exit.cause) : "ended without error",
          batchesRewritten: held.length
        })
      )
      yield* Effect.sleep(restartDelay)
      yield* Effect.forEach(held, commit, { concurrency: options.writers, discard: true })
      if (closing && Queue.sizeUnsafe(queue) === 0) return
    }
  })

  const writer = yield* Effect.forkScoped(supervised)

  // Runs before the writer fiber is interrupted (finalizers run in reverse):
  // ending the queue lets the stream flush everything already accepted.
  yield* Effect.addFinalizer(() =>
    Effect.gen(function*() {
      closing = true
      yield* Effect.logInfo("Shutting down: committing accepted events").pipe(
        Effect.annotateLogs({ uncommitted: options.uncommitted() })
      )
      yield* Queue.end(queue)
      const finished = yield* Fiber.await(writer).pipe(Effect.timeoutOption(options.shutdownTimeout))
      const left = options.uncommitted()
      if (finished._tag === "None" || left > 0) {
        yield* Effect.logError(
          "Shutdown timed out before every accepted event was committed; they were not acknowledged to the source and will be read again at the next start"
        ).pipe(Effect.annotateLogs({ uncommitted: left }))
        return yield* Effect.die(new UncommittedAtShutdown(left))
      }
      yield* Effect.logInfo("Every accepted event is committed")
    })
  )

  return {
    offer: (entry: Accepted) =>
      Queue.offer(queue, entry).pipe(
        Effect.flatMap((accepted) => accepted ? Effect.void : Effect.die(new Error("BatchWriter is closed")))
      ),
    offerUnsafe: (entry: Accepted) => Queue.offerUnsafe(queue, entry),
    observeDatabase: health.observed
  } satisfies BatchWriter
})
