/**
 * `/health/live` (the process answers), `/health/ready` (each tier pinged
 * with a deadline: PostgreSQL down is "down" and 503, since the API cannot
 * answer without it; Redis or RabbitMQ down is "degraded" and 200, since
 * reads fall back to PostgreSQL) and `/metrics` (Prometheus text). Without
 * a key, so readiness answers say no more than up or down per tier, and one
 * answer serves every caller for a second; RequestGuard.ts rate-limits both
 * per client address.
 */
import { Duration, Effect, Layer } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { PrometheusMetrics } from "effect/observability"
import { EventBus } from "../../services/EventBus.ts"
import { MessageCache } from "../../services/MessageCache.ts"
import { MessageQuery } from "../../services/MessageQuery.ts"
import { checkTiers } from "../Readiness.ts"

/** The API's readiness: PostgreSQL through the read side it answers from. */
export const readiness = Effect.gen(function*() {
  const query = yield* MessageQuery
  const cache = yield* MessageCache
  const bus = yield* EventBus
  return yield* checkTiers({ postgres: query.ping, redis: cache.ping, rabbitmq: bus.ping })
})

/**
 * What anyone may see without a key: up, degraded or down, per tier up or
 * down. The errors themselves (host names, driver messages) go to the log.
 */
const publicReport = (report: Effect.Success<typeof readiness>) =>
  Effect.gen(function*() {
    const down = Object.entries(report.tiers).filter(([, tier]) => !tier.up)
    if (down.length > 0) {
      yield* Effect.logWarning("Readiness: tiers down").pipe(
        Effect.annotateLogs(Object.fromEntries(down.map(([name, tier]) => [name, tier.error ?? "down"])))
      )
    }
    return {
      status: report.status,
      tiers: Object.fromEntries(Object.entries(report.tiers).map(([name, tier]) => [name, tier.up ? "up" : "down"]))
    }
  })

/** How long one readiness answer serves every caller: a flood pings the tiers once per this. */
const readinessTtl = Duration.seconds(1)

export const layer = Layer.mergeAll(
  HttpRouter.add("GET", "/health/live", HttpServerResponse.jsonUnsafe({ status: "ok" })),
  Layer.unwrap(Effect.gen(function*() {
    const cached = yield* Effect.cachedWithTTL(Effect.flatMap(readiness, publicReport), readinessTtl)
    return HttpRouter.add(
      "GET",
      "/health/ready",
      Effect.map(cached, (report) => HttpServerResponse.jsonUnsafe(report, { status: report.status === "down" ? 503 : 200 }))
    )
  })),
  PrometheusMetrics.layerHttp({ path: "/metrics" })
)
