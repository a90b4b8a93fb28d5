/**
 * The migration runner: numbered files in sql/ (`0001_name.up.sql` and its
 * rollback `0001_name.down.sql`), applied in order, each in its own
 * transaction, recorded in `schema_migrations` with a checksum of the up file.
 *
 * It connects with `database.migrationUrl`, directly to PostgreSQL and not
 * through PgBouncer, because it holds a session advisory lock for the whole
 * run: two hosts migrating at once take turns, and the second finds nothing
 * left to do.
 */
import { PgClient } from "@effect/sql-pg"
import { Duration, Effect, Layer, Option, Schedule } from "effect"
import { Reactivity } from "effect/reactivity"
import type { SqlClient } from "effect/sql"
import { isSqlError } from "effect/sql/SqlError"
import { createHash } from "node:crypto"
import { existsSync } from "node:fs"
import { readdir, readFile } from "node:fs/promises"
import { fileURLToPath } from "node:url"
import { DatabaseConfig } from "../services/GatewayConfig.ts"
import { type Migration, MigrationChecksumMismatch, type MigrationError, MigrationFailed, Migrations, type MigrationStatus } from "../services/Migrations.ts"
import { splitStatements } from "./SqlScript.ts"
import { target } from "./PgClient.ts"

/**
 * The project's sql/ directory: the nearest one above this module, so it is
 * found from src/ (tsx), dist/ (the build) and a benchmark build alike.
 */
const sqlDirectory = [1, 2, 3, 4]
  .map((levels) => new URL(`${"../".repeat(levels)}sql/`, import.meta.url))
  .find((candidate) => existsSync(new URL("0001_messages.up.sql", candidate))) ?? new URL("../../sql/", import.meta.url)

const migrationFileName = /^(\d{4})_([a-z0-9_]+)\.(up|down)\.sql$/

interface AppliedRow {
  readonly version: number
  readonly checksum: string
  readonly applied_at: Date
}

const readText = (file: string) =>
  Effect.tryPromise({
    try: () => readFile(new URL(file, sqlDirectory), "utf8"),
    catch: (cause) => new MigrationFailed({ operation: `read sql/${file}`, cause })
  })

const checksumOf = (text: string) => createHash("sha256").update(text).digest("hex")

/** Every migration in sql/, by version; a duplicate version or a stray down file is an error. */
const loadMigrations = Effect.gen(function*() {
  const names = yield* Effect.tryPromise({
    try: () => readdir(fileURLToPath(sqlDirectory)),
    catch: (cause) => new MigrationFailed({ operation: "list sql/", cause })
  })
  const ups = new Map<number, { name: string; file: string }>()
  const downs = new Map<number, string>()
  for (const file of names.sort()) {
    const match = migrationFileName.exec(file)
    if (match === null) continue
    const version = Number(match[1])
    const target = match[3] === "up" ? ups : downs
    if (target.has(version)) {
      return yield* new MigrationFailed({ operation: "list sql/", cause: `two ${match[3]} files for version ${match[1]}` })
    }
    if (match[3] === "up") ups.set(version, { name: match[2]!, file })
    else downs.set(version, file)
  }
  for (const [version, file] of downs) {
    if (!ups.has(version)) return yield* new MigrationFailed({ operation: "list sql/", cause: `${file} has no up file` })
  }
  const migrations: Array<Migration> = []
  for (const [version, { file, name }] of [...ups].sort(([a], [b]) => a - b)) {
    migrations.push({ version, name, upFile: file, downFile: downs.get(version), checksum: checksumOf(yield* readText(file)) })
  }
  return migrations
})

/** One direct connection: the session lock and every statement of the run share it. */
const connect = Effect.gen(function*() {
  const config = yield* DatabaseConfig
  return yield* PgClient.makeClient({
    url: config.migrationUrl,
    ...target(config.migrationUrl),
    connectTimeout: config.connectTimeout,
    applicationName: "telegram-gateway-migrations",
    prepare: false
  })
}).pipe(
  Effect.provide(Reactivity.layer),
  // A ConfigError or a refused connection alike: nothing can run.
  Effect.mapError((cause) => new MigrationFailed({ operation: "connect with database.migrationUrl", cause }))
)

const sqlStep = (operation: string) => <A, R>(effect: Effect.Effect<A, unknown, R>) =>
  Effect.mapError(effect, (cause) => cause instanceof MigrationFailed ? cause : new MigrationFailed({ operation, cause }))

/**
 * Runs `body` on a migration connection holding the lock. The lock is a
 * session lock on purpose: it must span several transactions.
 */
const withMigrationLock = <A, E, R>(body: (sql: SqlClient.SqlClient) => Effect.Effect<A, E, R>) =>
  Effect.scoped(Effect.gen(function*() {
    const sql = yield* connect
    yield* Effect.acquireRelease(
      sql`SELECT pg_advisory_lock(hashtext('telegram-gateway/migrations'))`.pipe(sqlStep("take the migration lock")),
      () => sql`SELECT pg_advisory_unlock(hashtext('telegram-gateway/migrations'))`.pipe(Effect.ignore)
    )
    yield* sql`CREATE TABLE IF NOT EXISTS schema_migrations (
      version    integer PRIMARY KEY,
      name       text NOT NULL,
      checksum   text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`.pipe(sqlStep("create schema_migrations"))
    return yield* body(sql)
  }))

const appliedMigrations = (sql: SqlClient.SqlClient) =>
  sql<AppliedRow>`SELECT version, checksum, applied_at FROM schema_migrations ORDER BY version`.pipe(
    Effect.map((rows) => new Map(rows.map((row) => [row.version, row]))),
    sqlStep("read schema_migrations")
  )

const runScript = (sql: SqlClient.SqlClient, file: string) =>
  Effect.gen(function*() {
    const statements = splitStatements(yield* readText(file))
    for (const statement of statements) yield* sql.unsafe(statement)
  })

/**
 * A catalog row the migration updates or deletes was changed by another
 * transaction that committed while the migration waited for it: PostgreSQL
 * answers "tuple concurrently updated" (or "deleted"), internal error XX000.
 * TimescaleDB's background jobs do this on their own schedule: a continuous
 * aggregate's refresh job updates its catalog rows while 0004's rollback drops
 * the aggregate and its job. The migration's transaction rolled back whole,
 * so running it again once the job is done is safe.
 */
const isConcurrentCatalogUpdate = (cause: unknown): boolean => {
  if (!isSqlError(cause)) return false
  const inner: unknown = cause.reason.cause
  const message = typeof inner === "object" && inner !== null && "message" in inner ? inner.message : undefined
  return typeof message === "string" && /^tuple concurrently (updated|deleted)$/.test(message)
}

/** Runs one migration file's transaction, again (up to 5 times, 500 ms apart) when it lost a catalog race. */
const retryCatalogRace = (operation: string) => <A, E, R>(transaction: Effect.Effect<A, E, R>) =>
  transaction.pipe(
    Effect.tapError((cause) =>
      isConcurrentCatalogUpdate(cause)
        ? Effect.logWarning(`${operation}: a concurrent transaction (a TimescaleDB job) changed the same catalog row; running it again`)
        : Effect.void
    ),
    Effect.retry({ while: isConcurrentCatalogUpdate, times: 5, schedule: Schedule.spaced("500 millis") })
  )

/** Checks every applied file against its checksum, then applies the pending ones of `wanted`. */
const applyPending = (migrations: ReadonlyArray<Migration>, wanted: ReadonlyArray<Migration>) =>
  Effect.gen(function*() {
  return yield* withMigrationLock((sql) =>
    Effect.gen(function*() {
      const applied = yield* appliedMigrations(sql)
      for (const migration of migrations) {
        const recorded = applied.get(migration.version)
        if (recorded !== undefined && recorded.checksum !== migration.checksum) {
          return yield* new MigrationChecksumMismatch({
            file: migration.upFile,
            recorded: recorded.checksum,
            current: migration.checksum
          })
        }
      }
      const pending = wanted.filter((migration) => !applied.has(migration.version))
      for (const migration of pending) {
        yield* sql.withTransaction(Effect.gen(function*() {
          yield* runScript(sql, migration.upFile)
          yield* sql`INSERT INTO schema_migrations (version, name, checksum, applied_at)
            VALUES (${migration.version}, ${migration.name}, ${migration.checksum}, now())`
        })).pipe(retryCatalogRace(`apply ${migration.upFile}`), sqlStep(`apply ${migration.upFile}`))
        yield* Effect.logInfo(`Applied migration ${migration.upFile}`)
      }
      return pending
    })
  )
})

/**
 * Applies the pending migrations up to version `to` (every one when absent),
 * in order; returns those it applied (none when up to date). A target above
 * the newest file is an error, not a silent "latest".
 */
export const migrateTo = Effect.fn("Migrations.migrateTo")(function*(options: { readonly to?: number | undefined }) {
  const migrations = yield* loadMigrations
  const target = options.to
  if (target !== undefined && target !== 0 && !migrations.some((migration) => migration.version === target)) {
    return yield* new MigrationFailed({
      operation: `migrate to version ${target}`,
      cause: `no migration ${String(target).padStart(4, "0")} in sql/`
    })
  }
  return yield* applyPending(
    migrations,
    target === undefined ? migrations : migrations.filter((migration) => migration.version <= target)
  )
})

/** Applies every pending migration in order; returns those it applied (none when up to date). */
export const migrate: Effect.Effect<ReadonlyArray<Migration>, MigrationError> = Effect.gen(function*() {
  const migrations = yield* loadMigrations
  return yield* applyPending(migrations, migrations)
}).pipe(Effect.withSpan("Migrations.migrate"))

/** Every migration in sql/ with whether it is applied, pending, or changed since. */
export const status: Effect.Effect<ReadonlyArray<MigrationStatus>, MigrationError> = Effect.gen(function*() {
  const migrations = yield* loadMigrations
  const applied = yield* withMigrationLock(appliedMigrations)
  return migrations.map((migration): MigrationStatus => {
    const recorded = applied.get(migration.version)
    return {
      version: migration.version,
      name: migration.name,
      file: migration.upFile,
      state: recorded === undefined ? "pending" : recorded.checksum === migration.checksum ? "applied" : "changed",
      appliedAt: recorded?.applied_at ?? null
    }
  })
}).pipe(Effect.withSpan("Migrations.status"))

/**
 * Rolls back, newest first, every applied migration above version `to`
 * (0 = all), each with its down file in its own transaction. Returns those
 * rolled back.
 */
export const rollback = Effect.fn("Migrations.rollback")(
  function*(options: { readonly to: number }) {
    const migrations = yield* loadMigrations
    const byVersion = new Map(migrations.map((migration) => [migration.version, migration]))
    return yield* withMigrationLock((sql) =>
      Effect.gen(function*() {
        const applied = yield* appliedMigrations(sql)
        const versions = [...applied.keys()].filter((version) => version > options.to).sort((a, b) => b - a)
        const rolledBack: Array<Migration> = []
        for (const version of versions) {
          const migration = byVersion.get(version)
          if (migration?.downFile === undefined) {
            return yield* new MigrationFailed({
              operation: `roll back version ${version}`,
              cause: migration === undefined ? "no migration file in sql/" : `${migration.upFile} has no down file`
            })
          }
          const downFile = migration.downFile
          yield* sql.withTransaction(Effect.gen(function*() {
            yield* runScript(sql, downFile)
            yield* sql`DELETE FROM schema_migrations WHERE version = ${version}`
          })).pipe(retryCatalogRace(`roll back ${downFile}`), sqlStep(`roll back ${downFile}`))
          yield* Effect.logInfo(`Rolled back migration ${downFile}`)
          rolledBack.push(migration)
        }
        return rolledBack as ReadonlyArray<Migration>
      })
    )
  }
)

/**
 * Applies the configured storage policies (`database.chunkInterval`,
 * `compressAfter`, `retention`) with `apply_storage_policies()` from 0004:
 * migration files are static SQL, so `telegram-gateway migrate` runs this
 * after them. Returns one line per policy applied; nothing when 0004 is not
 * applied yet.
 */
export const applyStoragePolicies = Effect.gen(function*() {
  const config = yield* DatabaseConfig.pipe(sqlStep("read database configuration"))
  const interval = (duration: Duration.Duration) => `${Duration.toMillis(duration)} milliseconds`
  return yield* withMigrationLock((sql) =>
    Effect.gen(function*() {
      const [installed] = yield* sql<{ present: boolean }>`
        SELECT to_regprocedure('apply_storage_policies(interval, interval, interval)') IS NOT NULL AS present`
      if (installed?.present !== true) return [] as ReadonlyArray<string>
      const rows = yield* sql<{ policy: string }>`
        SELECT apply_storage_policies(
          ${interval(config.chunkInterval)}::interval,
          ${Option.getOrNull(Option.map(config.compressAfter, interval))}::interval,
          ${Option.getOrNull(Option.map(config.retention, interval))}::interval
        ) AS policy`
      return rows.map((row) => row.policy)
    }).pipe(sqlStep("apply storage policies"))
  )
}).pipe(Effect.withSpan("Migrations.applyStoragePolicies"))

/** The Migrations service: each call reads `database.*` and connects with `database.migrationUrl` for its run. */
export const layer = Layer.succeed(Migrations, Migrations.of({ migrate, migrateTo, status, rollback, applyStoragePolicies }))
