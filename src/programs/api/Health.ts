/**
 * `/health/live` (the process answers), `/health/ready` (each tier pinged
 * with a deadline: PostgreSQL down is "down" and 503, since the API cannot
 * answer without it; Redis or RabbitMQ down is "degraded" and 200, since
 * reads fall back to PostgreSQL) and `/metrics` (Prometheus text).
 */
import { Duration, Effect, Layer } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { PrometheusMetrics } from "effect/observability"
import { EventBus } from "../../services/EventBus.ts"
import { MessageCache } from "../../services/MessageCache.ts"
import { MessageQuery } from "../../services/MessageQuery.ts"

export interface TierCheck {
  readonly up: boolean
  readonly latencyMs: number
  readonly error?: string
}

const deadline = Duration.seconds(2)

const check = <E extends { readonly message: string }>(ping: Effect.Effect<void, E>): Effect.Effect<TierCheck> =>
  Effect.gen(function*() {
    const started = performance.now()
    const outcome = yield* ping.pipe(
      Effect.timeoutOrElse({ duration: deadline, orElse: () => Effect.fail({ message: `no answer within ${Duration.format(deadline)}` }) }),
      Effect.result
    )
    const latencyMs = Math.round((performance.now() - started) * 100) / 100
    return outcome._tag === "Success" ? { up: true, latencyMs } : { up: false, latencyMs, error: outcome.failure.message }
  })

export const readiness = Effect.gen(function*() {
  const query = yield* MessageQuery
  const cache = yield* MessageCache
  const bus = yield* EventBus
  const tiers = yield* Effect.all({ postgres: check(query.ping), redis: check(cache.ping), rabbitmq: check(bus.ping) }, {
    concurrency: "unbounded"
  })
  const status = !tiers.postgres.up ? "down" : tiers.redis.up && tiers.rabbitmq.up ? "ok" : "degraded"
  return { status, tiers } as const
})

export const layer = Layer.mergeAll(
  HttpRouter.add("GET", "/health/live", HttpServerResponse.jsonUnsafe({ status: "ok" })),
  HttpRouter.add(
    "GET",
    "/health/ready",
    Effect.map(readiness, (report) => HttpServerResponse.jsonUnsafe(report, { status: report.status === "down" ? 503 : 200 }))
  ),
  PrometheusMetrics.layerHttp({ path: "/metrics" })
)
