/**
 * Who is calling: the presented `X-API-Key` is hashed and compared with every
 * configured SHA-256 in constant time (all of them, so the time taken says
 * nothing about which entry matched), then charged one token from that key's
 * bucket (Limits.ts). The key itself is never stored or logged, only its name.
 */
import { Clock, Context, Effect, Layer, Option, Redacted } from "effect"
import * as Crypto from "node:crypto"
import { ApiConfig, type ApiKeyEntry, type ApiScope } from "../../services/ApiConfig.ts"
import { Forbidden, type RateLimited, Unauthorized } from "./Errors.ts"
import { Limits } from "./Limits.ts"

/** At most one warning about refused keys per this many milliseconds. */
const authFailureLogIntervalMs = 10_000

/** One-shot `crypto.hash`: about half the cost of a `createHash` object per request. */
export const sha256 = (value: string): Buffer => Crypto.hash("sha256", value, "buffer")

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
      const limits = yield* Limits

      const identify = (presented: string): Option.Option<ApiKeyEntry> => {
        const hash = sha256(presented)
        let found: ApiKeyEntry | undefined = undefined
        for (const candidate of hashes) {
          if (Crypto.timingSafeEqual(hash, candidate.hash) && found === undefined) found = candidate.entry
        }
        return Option.fromNullishOr(found)
      }

      /**
       * Each 401 is counted by RequestMetrics.ts (api_auth_failures_total); a
       * warning sums them up at most once per `authFailureLogIntervalMs`, so a
       * flood of bad keys cannot flood the journal. The presented key is
       * never logged.
       */
      const failures = { missing: 0, unknown: 0, since: 0 }
      const refuse = Effect.fnUntraced(function*(reason: "missing" | "unknown", message: string) {
        const now = yield* Clock.currentTimeMillis
        failures[reason] += 1
        if (now - failures.since >= authFailureLogIntervalMs) {
          yield* Effect.logWarning("API requests refused with 401").pipe(
            Effect.annotateLogs({
              missingKey: failures.missing,
              unknownKey: failures.unknown,
              sinceSeconds: failures.since === 0 ? null : Math.round((now - failures.since) / 1000)
            })
          )
          failures.missing = 0
          failures.unknown = 0
          failures.since = now
        }
        return yield* new Unauthorized({ message })
      })

      const authorize = Effect.fnUntraced(function*(presented: Redacted.Redacted<string>, scope: ApiScope) {
        const value = Redacted.value(presented)
        if (value === "") return yield* refuse("missing", "Send your API key in the X-API-Key header")
        const entry = identify(value)
        if (Option.isNone(entry)) {
          return yield* refuse("unknown", "The X-API-Key header does not hold a configured API key")
        }
        if (!allows(entry.value, scope)) {
          return yield* new Forbidden({
            message: `API key "${entry.value.name}" lacks the "${scope}" scope this endpoint needs; ` +
              `it has: ${entry.value.scopes.join(", ") || "none"}`
          })
        }
        yield* limits.rate("key", entry.value.name, `API key "${entry.value.name}"`)
        return entry.value
      })

      return ApiKeys.of({ authorize })
    })
  )
}
