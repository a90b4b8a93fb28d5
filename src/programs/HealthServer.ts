/**
 * The daemon's own HTTP endpoint (default 127.0.0.1:4007): liveness,
 * readiness with each tier's state, and Prometheus metrics.
 */
import { NodeHttpServer } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { PrometheusMetrics } from "effect/observability"
import { createServer } from "node:http"
import { HttpConfig } from "../services/GatewayConfig.ts"
import * as Metrics from "../services/Metrics.ts"
import { Ingestion } from "./Ingestion.ts"
import * as MetricsAtStart from "./MetricsAtStart.ts"
import * as ProcessMetrics from "./ProcessMetrics.ts"
import { checkReadiness } from "./Readiness.ts"

const ready = Effect.gen(function*() {
  const report = yield* checkReadiness
  const pending = yield* (yield* Ingestion).pending
  return yield* HttpServerResponse.json({ ...report, pendingWrites: pending }, { status: report.status === "down" ? 503 : 200 })
})

const routes = Layer.mergeAll(
  HttpRouter.add("GET", "/health/live", HttpServerResponse.json({ status: "ok" })),
  HttpRouter.add("GET", "/health/ready", ready),
  PrometheusMetrics.layerHttp({ path: "/metrics" }),
  // Every series from the first scrape, and the process's own health.
  MetricsAtStart.layer([Metrics]),
  ProcessMetrics.layer
)

export const layer = Layer.unwrap(
  Effect.gen(function*() {
    const http = yield* HttpConfig
    return HttpRouter.serve(routes, { disableLogger: true, disableListenLog: true }).pipe(
      Layer.provide(NodeHttpServer.layer(createServer, { port: http.port, host: http.host }))
    )
  })
)
