/**
 * Every migration in sql/, one at a time: up, down (the schema is exactly as
 * before it), and up again. Against real PostgreSQL, in a database of its own.
 */
import { PgClient } from "@effect/sql-pg"
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Logger, Redacted, Schedule } from "effect"
import { Reactivity } from "effect/reactivity"
import * as Migrations from "../../src/layers/Migrations.ts"
import { configLayer, makeTestDatabase, query, type TestDatabase } from "../support/Database.ts"
import { applicationRole, ensureRoles } from "./Roles.ts"

/** Whether the object `oid` belongs to an extension (pg_depend's 'e' dependency). */
const extensionMember = (oid: string) => `EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = ${oid} AND d.deptype = 'e')`

/**
 * Relations, columns, functions (with SECURITY DEFINER), triggers and the
 * application role's grants. Objects of an extension are left out: 0001
 * installs TimescaleDB when the server can load it, and its rollback leaves
 * the extension in place (docs/database.md), so on TimescaleDB the
 * extension's own functions in public are not the schema under test.
 */
const schemaSnapshot = (database: TestDatabase) =>
  query<{ item: string }>(
    database,
    `SELECT item FROM (
       SELECT c.relkind::text || ' ' || c.relname AS item
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = 'public' AND NOT ${extensionMember("c.oid")}
       UNION ALL
       SELECT 'column ' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
       FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = 'public' AND a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'v', 'm')
       UNION ALL
       SELECT 'function ' || p.oid::regprocedure::text || CASE WHEN p.prosecdef THEN ' definer' ELSE '' END
             || ' body ' || md5(p.prosrc)
       FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
       WHERE n.nspname = 'public' AND NOT ${extensionMember("p.oid")}
       UNION ALL
       SELECT 'trigger ' || t.tgname FROM pg_trigger t
       WHERE NOT t.tgisinternal AND NOT ${extensionMember("t.tgrelid")}
       UNION ALL
       SELECT 'grant ' || c.relname
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND has_table_privilege('${applicationRole}', c.oid, 'INSERT')
     ) s ORDER BY item`
  ).pipe(Effect.map((rows) => rows.map((row) => row.item)))

/**
 * Migrations whose work TimescaleDB has already done: 0042 creates
 * messages_date_idx, which create_hypertable (0001) made on the hypertable
 * under that name.
 */
const noOpOnTimescale = new Set([42])

/**
 * Migrations for TimescaleDB alone: 0058 bounds the hypertable's poll as
 * 0056 bounded the partitioned table's, which plain PostgreSQL keeps.
 */
const noOpOnPlainPostgres = new Set([58])

/** Whether TimescaleDB is installed in the database (0001 installs it where the server preloads it: CI's side cluster on 5439). */
const timescaleInstalled = (database: TestDatabase) =>
  query<{ installed: boolean }>(
    database,
    "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') AS installed"
  ).pipe(Effect.map(([row]) => row?.installed === true))

/** The superuser, in the test database: to hold a catalog row as TimescaleDB's scheduler does. */
const superuserIn = (database: TestDatabase) => {
  const url = new URL(process.env.TEST_DATABASE_ADMIN_URL ?? "postgres://postgres@127.0.0.1:5432/postgres")
  url.pathname = `/${database.name}`
  return PgClient.makeClient({ url: Redacted.make(url.toString()), prepare: false }).pipe(Effect.provide(Reactivity.layer))
}

describe("Migrations, one at a time", () => {
  it.effect("applies, rolls back to exactly the previous schema, and re-applies every migration", () =>
    Effect.gen(function*() {
      yield* ensureRoles
      const database = yield* makeTestDatabase("migration_steps", { migrate: false })
      const inDatabase = Effect.provide(configLayer(database))
      const versions = (yield* Migrations.status.pipe(inDatabase)).map((entry) => entry.version)
      assert.isAtLeast(versions.length, 8)
      let previous = 0
      for (const version of versions) {
        const before = yield* schemaSnapshot(database)
        const up = yield* Migrations.migrateTo({ to: version }).pipe(inDatabase)
        assert.deepStrictEqual(up.map((migration) => migration.version), [version])
        const applied = yield* schemaSnapshot(database)
        const timescale = yield* timescaleInstalled(database)
        if (timescale ? noOpOnTimescale.has(version) : noOpOnPlainPostgres.has(version)) {
          assert.deepStrictEqual(applied, before, `migration ${version} changes nothing here`)
        } else {
          assert.notDeepEqual(applied, before, `migration ${version} changes the schema`)
        }

        const down = yield* Migrations.rollback({ to: previous }).pipe(inDatabase)
        assert.deepStrictEqual(down.map((migration) => migration.version), [version])
        assert.deepStrictEqual(yield* schemaSnapshot(database), before, `rollback of ${version} restores the schema`)

        yield* Migrations.migrateTo({ to: version }).pipe(inDatabase)
        assert.deepStrictEqual(yield* schemaSnapshot(database), applied, `migration ${version} applies again identically`)
        previous = version
      }
      const states = yield* Migrations.status.pipe(inDatabase)
      assert.isTrue(states.every((entry) => entry.state === "applied"))
    }), { timeout: 120_000 })

  it.effect("0019 repairs processed_at for the edits marked before it", () =>
    Effect.gen(function*() {
      yield* ensureRoles
      const database = yield* makeTestDatabase("processed_repair", { migrate: false })
      const inDatabase = Effect.provide(configLayer(database))
      yield* Migrations.migrateTo({ to: 9 }).pipe(inDatabase)
      yield* query(database, "SELECT upsert_message_version(5, 1, 0, now(), 'original', '{}', now())")
      yield* query(database, `SELECT upsert_message_version(5, 1, 1767607300, now(), 'edited', '{}', now(),
        edited => to_timestamp(1767607300))`)
      yield* query(database, `INSERT INTO consumer_processed (consumer, event_key, processed_at)
        VALUES ('desk', '5:1:1767607300', '2026-01-05T10:00:00Z')`)
      const versions = query<{ version: number; processed_at: Date | null }>(
        database,
        "SELECT version, processed_at FROM messages WHERE channel_id = 5 ORDER BY version"
      )
      assert.deepStrictEqual((yield* versions).map((row) => row.processed_at), [null, null], "the 0003 trigger misses the edit")
      yield* Migrations.migrate.pipe(inDatabase)
      assert.deepStrictEqual((yield* versions).map((row) => row.processed_at?.toISOString() ?? null), [
        null,
        "2026-01-05T10:00:00.000Z"
      ])
    }))

  // On the live clock: the runner waits 500 ms before running it again.
  it.live("runs a rollback again when a concurrent transaction changed a catalog row it drops", () =>
    Effect.gen(function*() {
      yield* ensureRoles
      const database = yield* makeTestDatabase("catalog_race", { migrate: false })
      const inDatabase = Effect.provide(configLayer(database))
      yield* Migrations.migrateTo({ to: 4 }).pipe(inDatabase)
      const warnings: Array<string> = []
      const logger = Logger.make(({ logLevel, message }) => {
        if (logLevel === "Warn") warnings.push(String(Array.isArray(message) ? message[0] : message))
      })
      const scheduler = yield* superuserIn(database)
      // What a TimescaleDB job does to its catalog rows while 0004's rollback
      // drops the aggregate: update a row the DROP deletes, and commit only
      // once the rollback waits for it.
      const updated = yield* Deferred.make<void>()
      const commit = yield* Deferred.make<void>()
      const job = yield* scheduler.withTransaction(
        scheduler.unsafe("UPDATE pg_class SET relname = relname WHERE oid = 'message_counts_daily'::regclass").pipe(
          Effect.andThen(Deferred.succeed(updated, undefined)),
          Effect.andThen(Deferred.await(commit))
        )
      ).pipe(Effect.forkChild)
      yield* Deferred.await(updated)
      const rollback = yield* Migrations.rollback({ to: 3 }).pipe(inDatabase, Effect.provide(Logger.layer([logger])), Effect.forkChild)
      yield* query<{ waiting: boolean }>(database, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
        WHERE application_name = 'telegram-gateway-migrations' AND datname = current_database()
          AND wait_event_type = 'Lock' AND wait_event = 'transactionid') AS waiting`).pipe(
        Effect.flatMap(([row]) => row?.waiting === true ? Effect.void : Effect.fail("the rollback is not waiting yet")),
        Effect.retry({ schedule: Schedule.spaced("50 millis"), times: 200 })
      )
      yield* Deferred.succeed(commit, undefined)
      yield* Fiber.join(job)
      const rolledBack = yield* Fiber.join(rollback)
      assert.deepStrictEqual(rolledBack.map((migration) => migration.version), [4])
      assert.deepStrictEqual(warnings, [
        "roll back 0004_aggregates.down.sql: a concurrent transaction (a TimescaleDB job) changed the same catalog row; running it again"
      ])
      const [left] = yield* query<{ present: boolean }>(database, "SELECT to_regclass('message_counts_daily') IS NOT NULL AS present")
      assert.isFalse(left?.present)
    }).pipe(Effect.scoped), { timeout: 60_000 })

  it.effect("refuses a target version that has no migration file", () =>
    Effect.gen(function*() {
      const database = yield* makeTestDatabase("migration_target", { migrate: false })
      const error = yield* Effect.flip(Migrations.migrateTo({ to: 999 }).pipe(Effect.provide(configLayer(database))))
      assert.strictEqual(error._tag, "MigrationFailed")
      assert.include(error.message, "no migration 0999")
    }))

  it.effect("applies the configured storage policies after migrating", () =>
    Effect.gen(function*() {
      const database = yield* makeTestDatabase("storage_policies")
      const policies = yield* Migrations.applyStoragePolicies.pipe(
        Effect.provide(configLayer(database, { retention: "400 days" }))
      )
      assert.deepStrictEqual(
        policies,
        (yield* timescaleInstalled(database))
          ? ["chunk interval 24:00:00", "drop chunks and aggregate buckets older than 9600:00:00"]
          : ["daily partitions (plain PostgreSQL: chunk interval and compression do not apply)"]
      )
    }))
})
