/**
 * The daemon's own HTTP endpoint (default 127.0.0.1:4007): liveness,
 * readiness with each tier's state, each Telegram channel's freshness
 * (stale and refused channels named) and each account's role (owner or
 * standby, who owns it and since when), and Prometheus metrics.
 */
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { Duration, Effect, Layer, Option } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { PrometheusMetrics } from "effect/observability"
import { createServer } from "node:http"
import { HttpConfig, IngestConfig } from "../services/GatewayConfig.ts"
import * as Metrics from "../services/Metrics.ts"
import { TelegramSource } from "../services/TelegramSource.ts"
import { Ingestion } from "./Ingestion.ts"
import * as MetricsAtStart from "./MetricsAtStart.ts"
import * as ProcessMetrics from "./ProcessMetrics.ts"
import { Ownership } from "./Ownership.ts"
import { checkReadiness } from "./Readiness.ts"

/**
 * The Telegram sources' channels, when the daemon runs any (one given as a
 * service, or those of the accounts this process owns): stale, recovering
 * (behind, but fetching what it missed, with its progress) and refused ones
 * are named.
 */
const telegramReport = Effect.gen(function*() {
  const source = yield* Effect.serviceOption(TelegramSource)
  const owned = yield* (yield* Ownership).sources
  const sources = Option.isSome(source) ? [source.value, ...owned] : owned
  if (sources.length === 0) return undefined
  const channels = (yield* Effect.forEach(sources, (each) => each.channels)).flat()
  return {
    stale: channels.filter((channel) => channel.state === "stale").map((channel) => channel.channel),
    recovering: channels.flatMap((channel) =>
      channel.state === "recovering" && channel.recovery !== null ? [{ channel: channel.channel, ...channel.recovery }] : []
    ),
    refused: channels.filter((channel) => channel.refused !== null).map((channel) => `${channel.channel} (${channel.refused})`),
    channels
  }
})

/**
 * Ready means the tiers answer and the writer keeps up: an accepted event
 * older than `ingest.stallThreshold` means the writer is stalled (503), even
 * if PostgreSQL answers pings. A stale, recovering or refused Telegram
 * channel degrades it (200, named under `telegram`). A standby is ready (200): standing by is
 * its job. An account whose session Telegram refused makes the process not
 * ready at once; a standby that does not take an account because its session
 * was refused (`needs-login`) is degraded (200): it serves the others.
 */
const ready = Effect.gen(function*() {
  const report = yield* checkReadiness
  const writer = yield* (yield* Ingestion).writerStatus
  const { stallThreshold } = yield* IngestConfig
  const telegram = yield* telegramReport
  const accounts = yield* (yield* Ownership).roles
  const failed = accounts.some((account) => account.role === "failed")
  const loginNeeded = accounts.some((account) => account.role === "needs-login")
  const stalled = writer.oldestUncommittedSeconds > Duration.toSeconds(stallThreshold)
  const channelTrouble = telegram !== undefined &&
    (telegram.stale.length > 0 || telegram.refused.length > 0 || telegram.recovering.length > 0)
  const status = stalled || failed
    ? "down"
    : report.status === "ok" && (channelTrouble || loginNeeded)
    ? "degraded"
    : report.status
  return yield* HttpServerResponse.json(
    {
      ...report,
      status,
      writer: { status: stalled ? "stalled" : "ok", ...writer },
      pendingWrites: writer.uncommitted,
      ...(telegram !== undefined ? { telegram } : {}),
      accounts
    },
    { status: status === "down" ? 503 : 200 }
  )
})

/** The backlog gauges are brought up to date before every scrape. */
const metrics = Effect.gen(function*() {
  yield* (yield* Ingestion).writerStatus
  return HttpServerResponse.text(yield* PrometheusMetrics.format(), {
    contentType: "text/plain; version=0.0.4; charset=utf-8"
  })
})

const routes = Layer.mergeAll(
  HttpRouter.add("GET", "/health/live", HttpServerResponse.json({ status: "ok" })),
  HttpRouter.add("GET", "/health/ready", ready),
  HttpRouter.add("GET", "/metrics", metrics),
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
