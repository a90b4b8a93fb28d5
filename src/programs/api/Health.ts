/**
 * `/health/live` (the process answers), `/health/ready` (each tier pinged
 * with a deadline: PostgreSQL down is "down" and 503, since the API cannot
 * answer without it; Redis or RabbitMQ down is "degraded" and 200, since
 * reads fall back to PostgreSQL) and `/metrics` (Prometheus text).
 */
import { Effect, Layer } from "effect"
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

export const layer = Layer.mergeAll(
  HttpRouter.add("GET", "/health/live", HttpServerResponse.jsonUnsafe({ status: "ok" })),
  HttpRouter.add(
    "GET",
    "/health/ready",
    Effect.map(readiness, (report) => HttpServerResponse.jsonUnsafe(report, { status: report.status === "down" ? 503 : 200 }))
  ),
  PrometheusMetrics.layerHttp({ path: "/metrics" })
)
