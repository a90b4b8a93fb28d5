/**
 * Waiting for PostgreSQL in a loop that cannot proceed without it (a standby
 * reading its account's lease, the fleet's heartbeat): an outage is logged
 * once as a warning when it starts, naming what waits, and once at info level
 * when the database answers again; every failed attempt is counted; the
 * retries back off from the loop's interval up to `maxDelay`, so a database
 * down for an hour is asked a few hundred times, not thousands, and is used
 * again within `maxDelay` of its return.
 */
import { Clock, Duration, Effect, Metric } from "effect"

export interface DatabaseWaitOptions {
  /** What waits, for the log and /health: "account news", "the fleet heartbeat". */
  readonly what: string
  /** What is held back while waiting, for the warning. */
  readonly consequence: string
  /** The loop's interval while the database answers: the first retry's delay. */
  readonly interval: Duration.Duration
  /** The longest delay between two retries. */
  readonly maxDelay: Duration.Duration
  /** Counted on every failed attempt (with `attributes`). */
  readonly failures?: Metric.Counter<number>
  readonly attributes?: Record<string, string>
  /** Told each attempt's outcome: PostgreSQL's `tier_up` gauge (Ingestion's `observeDatabase`). */
  readonly observe?: (reachable: boolean) => Effect.Effect<void>
}

export interface DatabaseWait {
  /** An attempt failed: counts it, and warns if it is the outage's first. */
  readonly failed: (attempt: string, error: { readonly message: string }) => Effect.Effect<void>
  /** An attempt succeeded: ends the outage, if any, with one info line. */
  readonly answered: Effect.Effect<void>
  /** While waiting: what for and since when, for /health/ready; undefined otherwise. */
  readonly waiting: () => string | undefined
  /** How long to sleep before the next attempt: the interval, or the backoff while waiting. */
  readonly delay: () => Duration.Duration
}

export const makeDatabaseWait = (options: DatabaseWaitOptions): Effect.Effect<DatabaseWait> =>
  Effect.gen(function*() {
    const clock = yield* Clock.Clock
    let failures = 0
    let since = 0
    let lastError = ""
    const counter = options.failures === undefined
      ? undefined
      : options.attributes === undefined
      ? options.failures
      : Metric.withAttributes(options.failures, options.attributes)
    const interval = Duration.toMillis(options.interval)
    const maxDelay = Math.max(interval, Duration.toMillis(options.maxDelay))

    const failed = (attempt: string, error: { readonly message: string }) =>
      Effect.gen(function*() {
        failures += 1
        lastError = `${attempt} failed: ${error.message}`
        if (counter !== undefined) yield* Metric.update(counter, 1)
        if (options.observe !== undefined) yield* options.observe(false)
        if (failures > 1) return
        since = clock.currentTimeMillisUnsafe()
        yield* Effect.logWarning(
          `${options.what}: waiting for PostgreSQL (${lastError}); ${options.consequence} until it answers, retrying with backoff up to ${
            Duration.format(Duration.millis(maxDelay))
          }`
        )
      })

    const observeAnswer = options.observe?.(true) ?? Effect.void
    const answered = Effect.suspend(() => {
      if (failures === 0) return observeAnswer
      const seconds = Math.round((clock.currentTimeMillisUnsafe() - since) / 1000)
      const attempts = failures
      failures = 0
      return Effect.andThen(
        observeAnswer,
        Effect.logInfo(`${options.what}: PostgreSQL answers again, after ${attempts} failed attempts over ${seconds} s`)
      )
    })

    return {
      failed,
      answered,
      waiting: () =>
        failures === 0
          ? undefined
          : `waiting for PostgreSQL since ${new Date(since).toISOString()} (${failures} failed attempts; last: ${lastError})`,
      delay: () => Duration.millis(failures === 0 ? interval : Math.min(maxDelay, interval * 2 ** Math.min(failures - 1, 20)))
    } satisfies DatabaseWait
  })
