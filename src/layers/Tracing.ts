/**
 * Exports spans over OTLP/HTTP to a collector when `otel.exporterOtlpEndpoint`
 * is set; without it, tracing is off and costs nothing. Effect's own exporter
 * (`effect/observability` OtlpTracer): no OpenTelemetry SDK in the process.
 *
 * Sampling is decided where a trace begins: a root span is kept with
 * probability `otel.sampleRatio`, its descendants follow it, and a root that
 * links other spans (a PostgreSQL batch linking its messages) is kept as its
 * creator decided (src/programs/MessageTrace.ts). A collector that does not
 * answer is logged once (warning) and counted (`otel_export_failures_total`);
 * the spans of that export are dropped, never the events.
 */
import { Effect, Layer, Metric, Option, References, Tracer } from "effect"
import { FetchHttpClient, HttpClient } from "effect/http"
import { OtlpExporter, OtlpSerialization, OtlpTracer } from "effect/observability"
import { OtelConfig } from "../services/GatewayConfig.ts"
import * as Metrics from "../services/Metrics.ts"

/** Root spans without links are kept at `ratio`; everything else as its parent or creator decided. */
export const sampled = (tracer: Tracer.Tracer, ratio: number): Tracer.Tracer =>
  Tracer.make({
    span: (options) =>
      tracer.span(
        options.sampled && Option.isNone(options.parent) && options.links.length === 0
          ? { ...options, sampled: ratio >= 1 || Math.random() < ratio }
          : options
      ),
    context: tracer.context
  })

/** The HTTP client the exporter posts with: every failed attempt counted, an outage logged once. */
const exporterClient = Layer.effect(
  HttpClient.HttpClient,
  Effect.gen(function*() {
    const client = yield* HttpClient.HttpClient
    let failing = false
    const failed = (reason: string) =>
      Metric.update(Metrics.traceExportFailures, 1).pipe(
        Effect.andThen(
          failing ? Effect.void : Effect.logWarning("OTLP collector not answering; spans are dropped until it does").pipe(
            Effect.annotateLogs({ reason })
          )
        ),
        Effect.andThen(Effect.sync(() => (failing = true)))
      )
    const recovered = failing
      ? Effect.logInfo("OTLP collector answering again").pipe(Effect.andThen(Effect.sync(() => (failing = false))))
      : Effect.void
    return client.pipe(
      HttpClient.tap((response) =>
        response.status < 300 ? Effect.suspend(() => failing ? recovered : Effect.void) : failed(`HTTP ${response.status}`)
      ),
      HttpClient.tapError((error) => failed(error.message))
    )
  })
).pipe(Layer.provide(FetchHttpClient.layer))

export const layer = Layer.unwrap(
  Effect.gen(function*() {
    const config = yield* OtelConfig
    if (Option.isNone(config.exporterOtlpEndpoint)) return Layer.empty
    const url = new URL("v1/traces", config.exporterOtlpEndpoint.value.replace(/\/?$/, "/")).toString()
    const tracer = OtlpTracer.make({
      url,
      resource: { serviceName: config.serviceName, serviceVersion: "0.1.0" },
      exportInterval: config.exportInterval
    }).pipe(Effect.map((otlp) => sampled(otlp, config.sampleRatio)))
    return Layer.effect(Tracer.Tracer, tracer).pipe(
      Layer.provideMerge(OtlpExporter.layerFlusher),
      Layer.provide(
        config.exporterOtlpProtocol === "http/json" ? OtlpSerialization.layerJson : OtlpSerialization.layerProtobuf
      ),
      Layer.provide(exporterClient)
    )
  })
)

/**
 * Spans off altogether (`References.TracerEnabled`) when no collector is
 * configured, for every binary (src/main/Runtime.ts). Without it the API's
 * every request still made, timed and ended its spans (the HTTP server span
 * with its trace headers parsed, the query's, the driver's, with the SQL
 * text as an attribute), and the gateway every batch's (`BatchWriter.commit`,
 * `MessageStore.writeBatch`, the driver's), on
 * Effect's native tracer, which keeps them nowhere. The gateway's RabbitMQ
 * messages carry a `traceparent` only when a collector is set
 * (src/layers/RabbitEventBus.ts makes publish spans only then), so nothing a
 * consumer sees changes.
 */
export const offWithoutCollector = Layer.unwrap(
  Effect.map(OtelConfig, (config) =>
    Option.isNone(config.exporterOtlpEndpoint) ? Layer.succeed(References.TracerEnabled, false) : Layer.empty)
)
