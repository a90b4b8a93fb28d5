/**
 * Exports spans over OTLP/HTTP to an OpenTelemetry collector when
 * `otel.exporterOtlpEndpoint` is set; without it, tracing is off and costs
 * nothing. Span names follow `Service.method` (`MessageStore.writeBatch`,
 * `Ingestion.hotPath`, `BatchWriter.commit`).
 */
import * as NodeSdk from "@effect/opentelemetry/NodeSdk"
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http"
import { BatchSpanProcessor } from "@opentelemetry/sdk-trace-base"
import { Effect, Layer, Option } from "effect"
import { OtelConfig } from "../services/GatewayConfig.ts"

export const layer = Layer.unwrap(
  Effect.gen(function*() {
    const config = yield* OtelConfig
    if (Option.isNone(config.exporterOtlpEndpoint)) return Layer.empty
    const url = new URL("v1/traces", config.exporterOtlpEndpoint.value.replace(/\/?$/, "/")).toString()
    return NodeSdk.layer(() => ({
      resource: { serviceName: config.serviceName, serviceVersion: "0.1.0" },
      spanProcessor: new BatchSpanProcessor(new OTLPTraceExporter({ url }))
    }))
  })
)
