/**
 * The daemon, as layers: the three tiers, the ingestion program on top of
 * them, and the health/metrics endpoint. `run` launches it; tests and the
 * demo build the same layers with their own configuration.
 */
import { Layer } from "effect"
import * as PgMessageStore from "../layers/PgMessageStore.ts"
import * as RabbitEventBus from "../layers/RabbitEventBus.ts"
import * as RedisMessageCache from "../layers/RedisMessageCache.ts"
import * as HealthServer from "./HealthServer.ts"
import * as Ingestion from "./Ingestion.ts"

/** Redis, RabbitMQ and PostgreSQL, each from its configuration section. */
export const tiers = Layer.mergeAll(RedisMessageCache.layer, RabbitEventBus.layer, PgMessageStore.layer)

/** The ingestion program with its tiers, which stay visible to callers. */
export const ingestion = Ingestion.layer.pipe(Layer.provideMerge(tiers))

export const daemon = HealthServer.layer.pipe(Layer.provideMerge(ingestion))
