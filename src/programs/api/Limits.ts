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
 *   (PgMessageQuery).
 */
import { Context, Duration, Effect, Layer, Metric, Semaphore } from "effect"
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

      const expensive = <A, E, R>(key: string, effect: Effect.Effect<A, E, R>) =>
        keySemaphore(key).withPermitsIfAvailable(1)(
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
        ).pipe(
          Effect.flatMap((ran) =>
            ran._tag === "Some" ? Effect.succeed(ran.value) : refused("key_busy").pipe(
              Effect.andThen(Effect.fail(
                new RateLimited({
                  message: `API key "${key}" already runs ${config.expensive.perKey} searches or counts ` +
                    `(api.expensive.perKey); wait for one to finish, retry after 1 s`,
                  retryAfterSeconds: 1
                })
              ))
            )
          )
        )

      return Limits.of({ rate, expensive })
    })
  ).pipe(Layer.provide(RateLimiter.layer), Layer.provide(RateLimiter.layerStoreMemory))
}
