/**
 * What bounds one caller's cost, in memory (the API is one process per host,
 * so a shared store would add a failure mode for no gain):
 *
 * - `rate`: a token bucket per key (Effect's RateLimiter, `api.rateLimit`),
 *   and one per client address for the endpoints without a key
 *   (`api.publicRateLimit`): 429 with `Retry-After`.
 * - `expensive`: search and counts run at most `api.expensive.perKey` at a
 *   time per key (429 `key_busy`) and `api.expensive.total` at a time over
 *   all keys (503 `server_busy`), both with `Retry-After: 1`, so one key's
 *   heavy queries cannot take the connections every other key polls through.
 *   Each query also runs under `api.expensive.statementTimeout`
 *   (PgMessageQuery). And each key has a budget of query time
 *   (`api.expensive.budget`, a token bucket of milliseconds): a search or
 *   count is let run only while the key's budget is positive, and is charged
 *   the time it took when it ends, so a key that searches back to back gets
 *   429 with the `Retry-After` its debt needs instead of holding a database
 *   core for as long as it keeps asking.
 */
import { Clock, Context, Duration, Effect, Layer, Metric, Result, Semaphore } from "effect"
import { RateLimiter } from "effect/persistence"
import { ApiConfig } from "../../services/ApiConfig.ts"
import { requestsRefused } from "../../services/ApiMetrics.ts"
import { RateLimited, Unavailable } from "./Errors.ts"

const refused = (reason: string) => Metric.update(requestsRefused.pipe(Metric.withAttributes({ reason })), 1)

export class Limits extends Context.Service<Limits, {
  /** Takes a token from `key`'s bucket, or fails with 429 naming `who`. */
  readonly rate: (bucket: "key" | "public", key: string, who: string) => Effect.Effect<void, RateLimited>
  /** Runs a search or count for `key` within its concurrency limits. */
  readonly expensive: <A, E, R>(key: string, effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | RateLimited | Unavailable, R>
}>()("telegram-gateway/api/Limits") {
  static readonly layer = Layer.effect(
    Limits,
    Effect.gen(function*() {
      const config = yield* ApiConfig
      const limiter = yield* RateLimiter.RateLimiter
      const buckets = { key: config.rateLimit, public: config.publicRateLimit }

      const rate = (bucket: "key" | "public", key: string, who: string) => {
        const { burst, perSecond } = buckets[bucket]
        return limiter.consume({
          algorithm: "token-bucket",
          onExceeded: "fail",
          key: `${bucket}:${key}`,
          limit: burst,
          window: Duration.millis((burst / perSecond) * 1000)
        }).pipe(
          Effect.asVoid,
          Effect.catch((error) => {
            const retryAfterSeconds = error.reason._tag === "RateLimitExceeded"
              ? Math.max(1, Math.ceil(Duration.toSeconds(error.reason.retryAfter)))
              : 1
            return refused(bucket === "key" ? "rate_limited" : "public_rate_limited").pipe(
              Effect.andThen(Effect.fail(
                new RateLimited({
                  message: `${who} is over its rate limit of ${perSecond} requests/s (burst ${burst}); ` +
                    `retry after ${retryAfterSeconds} s`,
                  retryAfterSeconds
                })
              ))
            )
          })
        )
      }

      const budget = config.expensive.budget
      const budgetMillis = Duration.toMillis(budget.burst)
      /** One token per millisecond of query time; the bucket refills at `budget.perSecond`. */
      const budgetBucket = (key: string) => ({
        algorithm: "token-bucket" as const,
        key: `expensive:${key}`,
        limit: budgetMillis,
        window: Duration.millis((budgetMillis / Duration.toMillis(budget.perSecond)) * 1000)
      })
      /**
       * Takes the first millisecond of the key's next query; or, while the
       * key's budget is spent, the refusal (which costs the budget nothing).
       */
      const admit = (key: string): Effect.Effect<RateLimited | undefined> =>
        limiter.consume({ ...budgetBucket(key), onExceeded: "fail" }).pipe(
          Effect.as(undefined),
          Effect.catch((error) => {
            const retryAfterSeconds = error.reason._tag === "RateLimitExceeded"
              ? Math.max(1, Math.ceil(Duration.toSeconds(error.reason.retryAfter)))
              : 1
            return Effect.succeed(
              new RateLimited({
                message: `API key "${key}" spent its search and count time ` +
                  `(api.expensive.budget: ${Duration.format(budget.perSecond)} a second, ` +
                  `at most ${Duration.format(budget.burst)} ahead); retry after ${retryAfterSeconds} s`,
                retryAfterSeconds
              })
            )
          })
        )
      /** Charges the rest of the time a query took, into debt if it ran past the budget. */
      const charge = (key: string, millis: number) =>
        millis <= 1 ? Effect.void : limiter.consume({ ...budgetBucket(key), onExceeded: "delay", tokens: Math.ceil(millis) - 1 }).pipe(
          Effect.asVoid,
          Effect.ignore
        )
      /** Runs `effect` and charges the key for the time it took, however it ended. */
      const timed = <A, E, R>(key: string, effect: Effect.Effect<A, E, R>) =>
        Effect.flatMap(Clock.currentTimeMillis, (started) =>
          effect.pipe(Effect.onExit(() => Effect.flatMap(Clock.currentTimeMillis, (ended) => charge(key, ended - started)))))

      const total = yield* Semaphore.make(config.expensive.total)
      const perKey = new Map<string, Semaphore.Semaphore>()
      const keySemaphore = (key: string) => {
        let semaphore = perKey.get(key)
        if (semaphore === undefined) {
          semaphore = Semaphore.makeUnsafe(config.expensive.perKey)
          perKey.set(key, semaphore)
        }
        return semaphore
      }

      const overall = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
        total.withPermitsIfAvailable(1)(effect).pipe(
          Effect.flatMap((ran) =>
            ran._tag === "Some" ? Effect.succeed(ran.value) : refused("server_busy").pipe(
              Effect.andThen(Effect.fail(
                new Unavailable({
                  code: "server_busy",
                  message: `${config.expensive.total} searches and counts are running for all keys ` +
                    `(api.expensive.total); retry after 1 s`,
                  retryAfterSeconds: 1
                })
              ))
            )
          )
        )

      /**
       * Refuses a search or count for its own key's limits, after
       * `api.expensive.refusalDelay` (at most its Retry-After), outside every
       * slot: a client that asks again at once waits for each refusal.
       */
      const refuseKey = (reason: "key_busy" | "key_budget", error: RateLimited) =>
        refused(reason).pipe(
          Effect.andThen(Effect.sleep(Duration.min(config.expensive.refusalDelay, Duration.seconds(error.retryAfterSeconds)))),
          Effect.andThen(Effect.fail(error))
        )

      // The key's slot, then its budget, then a slot overall: each refusal is
      // decided in memory, before any connection is taken.
      const expensive = <A, E, R>(key: string, effect: Effect.Effect<A, E, R>) =>
        keySemaphore(key).withPermitsIfAvailable(1)(
          admit(key).pipe(
            Effect.flatMap((overBudget): Effect.Effect<Result.Result<A, RateLimited>, E | Unavailable, R> =>
              overBudget === undefined
                ? overall(timed(key, effect)).pipe(Effect.map(Result.succeed))
                : Effect.succeed(Result.fail(overBudget))
            )
          )
        ).pipe(
          Effect.flatMap((slot) => {
            if (slot._tag === "None") {
              return refuseKey(
                "key_busy",
                new RateLimited({
                  message: `API key "${key}" already runs ${config.expensive.perKey} searches or counts ` +
                    `(api.expensive.perKey); wait for one to finish, retry after 1 s`,
                  retryAfterSeconds: 1
                })
              )
            }
            return Result.isSuccess(slot.value) ? Effect.succeed(slot.value.success) : refuseKey("key_budget", slot.value.failure)
          })
        )

      return Limits.of({ rate, expensive })
    })
  ).pipe(Layer.provide(RateLimiter.layer), Layer.provide(RateLimiter.layerStoreMemory))
}
