/**
 * The application's connection pool: @effect/sql-pg through PgBouncer in
 * transaction mode (`database.url`). PgBouncer hands each transaction to any
 * server connection, so named prepared statements cannot be kept
 * (`prepare: false`) and nothing may rely on session state.
 *
 * The driver decodes int8 as `bigint`: queries cast ids they read back.
 */
import { PgClient } from "@effect/sql-pg"
import { Config, Redacted } from "effect"
import { DatabaseConfig } from "../services/GatewayConfig.ts"

/**
 * Host, port and database of a connection URL, given to the client as
 * options too: it names its SQL spans' `server.address`, `server.port` and
 * `db.namespace` from the options alone, so a URL's port (PgBouncer's 6434)
 * would otherwise be reported as 5432.
 */
export const target = (url: Redacted.Redacted<string>): { host?: string; port?: number; database?: string } => {
  let parsed: URL
  try {
    parsed = new URL(Redacted.value(url))
  } catch {
    return {} // the driver reports the bad URL itself
  }
  const host = parsed.searchParams.get("host") ?? decodeURIComponent(parsed.hostname)
  const database = decodeURIComponent(parsed.pathname.slice(1))
  return {
    ...(host === "" ? {} : { host }),
    ...(parsed.port === "" ? {} : { port: Number(parsed.port) }),
    ...(database === "" ? {} : { database })
  }
}

export const layer = PgClient.layerConfig(
  Config.map(DatabaseConfig, (config) => ({
    url: config.url,
    ...target(config.url),
    maxConnections: config.poolSize,
    connectTimeout: config.connectTimeout,
    prepare: false,
    applicationName: "telegram-gateway"
  }))
)
