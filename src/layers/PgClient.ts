/**
 * The application's connection pool: @effect/sql-pg through PgBouncer in
 * transaction mode (`database.url`). PgBouncer hands each transaction to any
 * server connection, so named prepared statements cannot be kept
 * (`prepare: false`) and nothing may rely on session state.
 *
 * The driver decodes int8 as `bigint`: queries cast ids they read back.
 */
import { PgClient } from "@effect/sql-pg"
import { Config } from "effect"
import { DatabaseConfig } from "../services/GatewayConfig.ts"

export const layer = PgClient.layerConfig(
  Config.map(DatabaseConfig, (config) => ({
    url: config.url,
    maxConnections: config.poolSize,
    connectTimeout: config.connectTimeout,
    prepare: false,
    applicationName: "telegram-gateway"
  }))
)
