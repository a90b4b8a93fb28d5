/**
 * Who is calling: the presented `X-API-Key` is hashed and compared with every
 * configured SHA-256 in constant time (all of them, so the time taken says
 * nothing about which entry matched), then charged one token from that key's
 * bucket. The key itself is never stored or logged, only its name.
 */
import { Context, Effect, Layer, Option, Redacted } from "effect"
import * as Crypto from "node:crypto"
import { ApiConfig, type ApiKeyEntry, type ApiScope } from "../../services/ApiConfig.ts"
import { Forbidden, RateLimited, Unauthorized } from "./Errors.ts"
import { makeTokenBuckets } from "./TokenBuckets.ts"

export const sha256 = (value: string): Buffer => Crypto.createHash("sha256").update(value, "utf8").digest()

/** Whether `entry` may call what needs `scope`: admin may do everything. */
export const allows = (entry: ApiKeyEntry, scope: ApiScope): boolean =>
  entry.scopes.includes(scope) || entry.scopes.includes("admin")

export class ApiKeys extends Context.Service<ApiKeys, {
  /** The key's entry if it is configured, allows `scope`, and has a token left. */
  readonly authorize: (
    presented: Redacted.Redacted<string>,
    scope: ApiScope
  ) => Effect.Effect<ApiKeyEntry, Unauthorized | Forbidden | RateLimited>
}>()("telegram-gateway/api/ApiKeys") {
  static readonly layer = Layer.effect(
    ApiKeys,
    Effect.gen(function*() {
      const config = yield* ApiConfig
      const hashes = config.keys.map((entry) => ({ entry, hash: Buffer.from(entry.sha256, "hex") }))
      const buckets = makeTokenBuckets(config.rateLimit)

      const identify = (presented: string): Option.Option<ApiKeyEntry> => {
        const hash = sha256(presented)
        let found: ApiKeyEntry | undefined = undefined
        for (const candidate of hashes) {
          if (Crypto.timingSafeEqual(hash, candidate.hash) && found === undefined) found = candidate.entry
        }
        return Option.fromNullishOr(found)
      }

      const authorize = Effect.fnUntraced(function*(presented: Redacted.Redacted<string>, scope: ApiScope) {
        const value = Redacted.value(presented)
        if (value === "") {
          return yield* new Unauthorized({ message: "Send your API key in the X-API-Key header" })
        }
        const entry = identify(value)
        if (Option.isNone(entry)) {
          return yield* new Unauthorized({ message: "The X-API-Key header does not hold a configured API key" })
        }
        if (!allows(entry.value, scope)) {
          return yield* new Forbidden({
            message: `API key "${entry.value.name}" lacks the "${scope}" scope this endpoint needs; ` +
              `it has: ${entry.value.scopes.join(", ") || "none"}`
          })
        }
        const waitMs = buckets.take(entry.value.name, Date.now())
        if (waitMs > 0) {
          const retryAfterSeconds = Math.max(1, Math.ceil(waitMs / 1000))
          return yield* new RateLimited({
            message: `API key "${entry.value.name}" is over its rate limit of ${config.rateLimit.perSecond} requests/s ` +
              `(burst ${config.rateLimit.burst}); retry after ${retryAfterSeconds} s`,
            retryAfterSeconds
          })
        }
        return entry.value
      })

      return ApiKeys.of({ authorize })
    })
  )
}
