/**
 * A fresh PostgreSQL database per test suite: created by the superuser on
 * 5432, owned by the application role, migrated (unless asked not to), reached
 * through PgBouncer on 6434 like the gateway, and dropped when the scope (the
 * suite's layer) closes. Suites never see each other's rows.
 *
 *   const Store = Layer.unwrap(Effect.map(makeTestDatabase("store"), (db) =>
 *     PgMessageStore.layer.pipe(Layer.provide(configLayer(db)))))
 */
import { PgClient } from "@effect/sql-pg"
import { ConfigProvider, Effect, Layer, Redacted } from "effect"
import { Reactivity } from "effect/reactivity"
import { randomBytes } from "node:crypto"
import * as Migrations from "../../src/layers/Migrations.ts"

/** Superuser connection for CREATE/DROP DATABASE; trust auth on this machine. */
const adminUrl = process.env.TEST_DATABASE_ADMIN_URL ?? "postgres://postgres@127.0.0.1:5432/postgres"
const appCredentials = "telegram_gateway:telegram_gateway"
const pgbouncerAddress = process.env.TEST_PGBOUNCER_ADDRESS ?? "127.0.0.1:6434"

/**
 * Where the application's connections go, as host and port: PgBouncer by
 * default; .ci/run points TEST_PGBOUNCER_ADDRESS (and TEST_POSTGRES_ADDRESS,
 * TEST_DATABASE_ADMIN_URL) at the TimescaleDB side cluster for its second run.
 */
export const applicationServer = {
  host: pgbouncerAddress.split(":")[0] ?? "127.0.0.1",
  port: Number(pgbouncerAddress.split(":")[1] ?? 6434)
}
const postgresAddress = process.env.TEST_POSTGRES_ADDRESS ?? "127.0.0.1:5432"

export interface TestDatabase {
  readonly name: string
  /** Through PgBouncer, as the application connects (`database.url`). */
  readonly url: Redacted.Redacted<string>
  /** Straight to PostgreSQL, as migrations connect (`database.migrationUrl`). */
  readonly migrationUrl: Redacted.Redacted<string>
}

/** The TimescaleDB side cluster (deploy/scripts/stack.sh timescaledb), for the suites written for it. */
export const timescaleCluster = { adminUrl: "postgres://postgres@127.0.0.1:5439/postgres", address: "127.0.0.1:5439" }

const withAdmin = <A, E>(use: (sql: PgClient.PgClient) => Effect.Effect<A, E>, url = adminUrl) =>
  Effect.scoped(
    PgClient.makeClient({ url: Redacted.make(url), prepare: false, applicationName: "telegram-gateway-tests" }).pipe(
      Effect.flatMap(use),
      Effect.provide(Reactivity.layer)
    )
  )

/** A URL to the test database through another address, e.g. a TcpProxy in front of PgBouncer. */
export const urlVia = (database: Pick<TestDatabase, "name">, address: string): Redacted.Redacted<string> =>
  Redacted.make(`postgres://${appCredentials}@${address}/${database.name}`)

/**
 * Config for the test database: `database.url` and `database.migrationUrl`,
 * plus any other `database.*` keys given (e.g. `statementTimeout`). Every
 * other key keeps its default.
 */
export const configLayer = (database: TestDatabase, overrides: Record<string, unknown> = {}) =>
  ConfigProvider.layer(
    ConfigProvider.fromUnknown({
      database: {
        url: Redacted.value(database.url),
        migrationUrl: Redacted.value(database.migrationUrl),
        ...overrides
      }
    })
  )

/** Where a test database lives: the machine's PostgreSQL and PgBouncer unless a test brings its own. */
export interface DatabaseServers {
  readonly postgresAddress: string
  readonly pgbouncerAddress: string
}

/** Scoped: the database is dropped (closing its connections) when the scope closes. */
export const makeTestDatabase = (
  prefix: string,
  options: {
    readonly migrate?: boolean
    readonly cluster?: typeof timescaleCluster
    /** Private servers a destructive test brings (test/support/SideServices.ts). */
    readonly servers?: DatabaseServers
  } = {}
) =>
  Effect.gen(function*() {
    const name = `tg_test_${prefix.toLowerCase().replace(/[^a-z0-9]+/g, "_")}_${randomBytes(4).toString("hex")}`
    const servers = options.servers ??
      (options.cluster === undefined
        ? { postgresAddress, pgbouncerAddress }
        : { postgresAddress: options.cluster.address, pgbouncerAddress: options.cluster.address })
    const admin = options.cluster?.adminUrl ??
      (options.servers === undefined ? adminUrl : `postgres://postgres@${options.servers.postgresAddress}/postgres`)
    yield* Effect.acquireRelease(
      withAdmin((sql) => sql.unsafe(`CREATE DATABASE ${name} OWNER telegram_gateway`), admin),
      () => withAdmin((sql) => sql.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`), admin).pipe(Effect.orDie)
    )
    const database: TestDatabase = {
      name,
      url: urlVia({ name }, servers.pgbouncerAddress),
      migrationUrl: Redacted.make(`postgres://${appCredentials}@${servers.postgresAddress}/${name}`)
    }
    if (options.migrate !== false) {
      yield* Migrations.migrate.pipe(Effect.provide(configLayer(database)))
    }
    return database
  })

/** Runs one statement on the test database, straight to PostgreSQL: for setup and assertions. */
export const query = <Row extends object = Record<string, unknown>>(database: TestDatabase, statement: string) =>
  Effect.scoped(
    PgClient.makeClient({ url: database.migrationUrl, prepare: false }).pipe(
      Effect.flatMap((sql) => sql.unsafe<Row>(statement)),
      Effect.provide(Reactivity.layer)
    )
  )
