/**
 * `Effect.retry`, with the retry built only once the effect has failed.
 *
 * `Effect.retry` turns its policy into a running schedule before the first
 * attempt (and, for an options object, builds the schedule itself first),
 * then gives every attempt the schedule's metadata: a few dozen objects per
 * call. On the paths that run for every event or batch (the cache write, a
 * batch's publish, a batch's commit) the first attempt almost always
 * succeeds, and that was most of what the retry cost: at 1,000 msg/s, one
 * event per batch, the schedules' objects were the largest share of the
 * gateway's allocation we could name (docs/benchmarks.md, "Eighth pass").
 *
 * Same attempts, same delays, same outcome: the first failure is handed to
 * `Effect.retry` as its first attempt's, and the later attempts run the
 * effect again. A cause with no typed failure (a defect, an interruption) is
 * not retried by `Effect.retry` either, and passes through untouched.
 */
import { Cause, Effect, Schedule } from "effect"

export const retryAfterFailure: {
  <E, X, E2, R2>(
    policy: Schedule.Schedule<X, NoInfer<E>, E2, R2>
  ): <A, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | E2, R | R2>
  <E>(
    policy: { readonly times?: number; readonly while?: (error: NoInfer<E>) => boolean }
  ): <A, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
} = <E>(
  policy: Schedule.Schedule<unknown, E, unknown, unknown> | {
    readonly times?: number
    readonly while?: (error: E) => boolean
  }
) =>
<A, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.catchCause(self, (cause) => {
    if (!Cause.hasFails(cause)) return Effect.failCause(cause)
    let replayed = false
    const attempts = Effect.suspend(() => (replayed ? self : ((replayed = true), Effect.failCause(cause))))
    // The same call twice: each branch matches one of Effect.retry's overloads.
    return (Schedule.isSchedule(policy) ? Effect.retry(attempts, policy) : Effect.retry(attempts, policy)) as Effect.Effect<
      A,
      E,
      R
    >
  })
