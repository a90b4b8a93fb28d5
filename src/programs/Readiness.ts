/**
 * The truth about the tiers, for health checks: each one pinged with a short
 * deadline. PostgreSQL down means the gateway cannot keep its promise
 * ("down"); Redis or RabbitMQ down means it runs without them ("degraded").
 */
import { Clock, Duration, Effect } from "effect"
import { EventBus } from "../services/EventBus.ts"
import { MessageCache } from "../services/MessageCache.ts"
import { MessageStore } from "../services/MessageStore.ts"

export interface TierCheck {
  readonly up: boolean
  readonly latencyMs: number
  readonly error?: string
}

export interface ReadinessReport {
  readonly status: "ok" | "degraded" | "down"
  readonly tiers: { readonly postgres: TierCheck; readonly redis: TierCheck; readonly rabbitmq: TierCheck }
}

const deadline = Duration.seconds(2)

const check = <E extends { readonly message: string }>(ping: Effect.Effect<void, E>): Effect.Effect<TierCheck> =>
  Effect.gen(function*() {
    const started = yield* Clock.monotonicTimeNanos
    const outcome = yield* ping.pipe(Effect.timeout(deadline), Effect.result)
    const latencyMs = Math.round(Number((yield* Clock.monotonicTimeNanos) - started) / 10_000) / 100
    return outcome._tag === "Success"
      ? { up: true, latencyMs }
      : { up: false, latencyMs, error: outcome.failure.message }
  })

type Ping = Effect.Effect<void, { readonly message: string }>

/** Pings the three tiers at once, each with a deadline, and says what it means. */
export const checkTiers = (pings: { readonly postgres: Ping; readonly redis: Ping; readonly rabbitmq: Ping }) =>
  Effect.gen(function*() {
    const tiers = yield* Effect.all(
      { postgres: check(pings.postgres), redis: check(pings.redis), rabbitmq: check(pings.rabbitmq) },
      { concurrency: "unbounded" }
    )
    const status = !tiers.postgres.up ? "down" : tiers.redis.up && tiers.rabbitmq.up ? "ok" : "degraded"
    return { status, tiers } satisfies ReadinessReport
  })

/** The daemon's readiness: PostgreSQL through the writer's store. */
export const checkReadiness = Effect.gen(function*() {
  const store = yield* MessageStore
  const cache = yield* MessageCache
  const bus = yield* EventBus
  return yield* checkTiers({ postgres: store.ping, redis: cache.ping, rabbitmq: bus.ping })
})
