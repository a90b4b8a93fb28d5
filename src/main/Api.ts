/**
 * The API's composition root: the server of src/programs/api/Server.ts on
 * the live tiers, with its metrics, under the runtime every binary shares.
 */
import { Effect, Layer } from "effect"
import * as PgClient from "../layers/PgClient.ts"
import * as PgMessageQuery from "../layers/PgMessageQuery.ts"
import * as RabbitEventBus from "../layers/RabbitEventBus.ts"
import * as RedisMessageCache from "../layers/RedisMessageCache.ts"
import * as Server from "../programs/api/Server.ts"
import * as MetricsAtStart from "../programs/MetricsAtStart.ts"
import * as ProcessMetrics from "../programs/ProcessMetrics.ts"
import * as ApiMetrics from "../services/ApiMetrics.ts"
import { formatConfigError, InvalidConfiguration } from "../services/InvalidConfiguration.ts"
import * as Metrics from "../services/Metrics.ts"
import * as Runtime from "./Runtime.ts"

/** PostgreSQL through PgBouncer, Redis, RabbitMQ (only pinged, for readiness). */
export const tiers = Layer.mergeAll(
  PgMessageQuery.layer.pipe(Layer.provide(PgClient.layer)),
  RedisMessageCache.layer,
  RabbitEventBus.layer
)

/** The server, its metrics from the first scrape, and the process's. */
export const api = Layer.mergeAll(
  Server.layer.pipe(Layer.provide(tiers)),
  // The API exports spans too (src/layers/Tracing.ts): its failure counter starts at 0 as well.
  MetricsAtStart.layer([ApiMetrics, { traceExportFailures: Metrics.traceExportFailures }]),
  ProcessMetrics.layer
)

/**
 * Runs until SIGTERM or Ctrl-C; configuration from the environment, then
 * $TELEGRAM_GATEWAY_CONFIG. A bad key exits 78, which the unit does not
 * restart (deploy/systemd/).
 */
export const main = Layer.launch(api.pipe(
  Layer.catchTag("ConfigError", (error) => Layer.effectDiscard(Effect.fail(new InvalidConfiguration({ detail: formatConfigError(error) })))),
  Layer.provide(Runtime.layer(undefined))
))
