#!/usr/bin/env node
/**
 * The `telegram-gateway-api` executable: the HTTP API for downstream
 * consumers (docs/api.md). Configuration as for the gateway: environment
 * first, then the JSON file named by TELEGRAM_GATEWAY_CONFIG. Logs as the
 * gateway does (src/layers/Logging.ts), its fatal error included; exits 0
 * when stopped by SIGTERM or Ctrl-C, 78 on invalid configuration.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Effect, Layer, Runtime } from "effect"
import * as ConfigSource from "../layers/ConfigSource.ts"
import * as Logging from "../layers/Logging.ts"
import * as Tracing from "../layers/Tracing.ts"
import * as Server from "../programs/api/Server.ts"
import * as MetricsAtStart from "../programs/MetricsAtStart.ts"
import * as ProcessMetrics from "../programs/ProcessMetrics.ts"
import * as ApiMetrics from "../services/ApiMetrics.ts"
import * as Metrics from "../services/Metrics.ts"
import { InvalidConfiguration } from "../programs/Startup.ts"

/** A stop by SIGTERM or Ctrl-C is a success, not 130. */
const teardown: Runtime.Teardown = (exit, onExit) =>
  Runtime.defaultTeardown(exit, (code) => onExit(code === 130 ? 0 : code))

const Main = Layer.launch(
  Layer.mergeAll(
    Server.layer,
    // The API exports spans too (src/layers/Tracing.ts): its failure counter starts at 0 as well.
    MetricsAtStart.layer([ApiMetrics, { traceExportFailures: Metrics.traceExportFailures }]),
    ProcessMetrics.layer
  ).pipe(Layer.provide(Tracing.layer))
).pipe(
  // A bad key exits 78, which the unit does not restart (deploy/systemd/).
  Effect.catchTag("ConfigError", (error) =>
    Effect.fail(new InvalidConfiguration({ detail: ConfigSource.formatConfigError(error) }))),
  Logging.reportFailure,
  Effect.provide(Logging.layer),
  Effect.provide(ConfigSource.layer(undefined))
)

NodeRuntime.runMain(Main, { teardown })
