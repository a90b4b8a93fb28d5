/**
 * The migration runner against real PostgreSQL, with the real files in sql/:
 * each test gets an empty database of its own, dropped when it ends.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { readdirSync } from "node:fs"
import * as Migrations from "../../src/layers/Migrations.ts"
import { configLayer, makeTestDatabase, query, type TestDatabase } from "../support/Database.ts"

const upFiles = readdirSync(new URL("../../sql/", import.meta.url)).filter((file) => file.endsWith(".up.sql")).sort()

const emptyDatabase = makeTestDatabase("migrations", { migrate: false })

const inDatabase = (database: TestDatabase) => Effect.provide(configLayer(database))

const tables = (database: TestDatabase) =>
  query<{ tablename: string }>(database, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'").pipe(
    Effect.map((rows) => rows.map((row) => row.tablename))
  )

describe("Migrations", () => {
  it.effect("applies every migration to an empty database, in order, and records each", () =>
    Effect.gen(function*() {
      const database = yield* emptyDatabase
      const applied = yield* Migrations.migrate.pipe(inDatabase(database))
      assert.deepStrictEqual(applied.map((migration) => migration.upFile), upFiles)
      const recorded = yield* query<{ version: number; name: string; checksum: string }>(
        database,
        "SELECT version, name, checksum FROM schema_migrations ORDER BY version"
      )
      assert.deepStrictEqual(recorded.map((row) => row.version), applied.map((migration) => migration.version))
      assert.deepStrictEqual(recorded.map((row) => row.checksum), applied.map((migration) => migration.checksum))
      const present = yield* tables(database)
      for (const table of ["messages", "message_deletions", "channels", "schema_migrations"]) {
        assert.include(present, table)
      }
    }))

  it.effect("does nothing when run again", () =>
    Effect.gen(function*() {
      const database = yield* emptyDatabase
      yield* Migrations.migrate.pipe(inDatabase(database))
      assert.deepStrictEqual(yield* Migrations.migrate.pipe(inDatabase(database)), [])
    }))

  it.effect("lists each migration as pending, then as applied", () =>
    Effect.gen(function*() {
      const database = yield* emptyDatabase
      const before = yield* Migrations.status.pipe(inDatabase(database))
      assert.deepStrictEqual(before.map((entry) => [entry.file, entry.state, entry.appliedAt]), upFiles.map((file) => [file, "pending", null]))
      yield* Migrations.migrate.pipe(inDatabase(database))
      const after = yield* Migrations.status.pipe(inDatabase(database))
      assert.deepStrictEqual(after.map((entry) => [entry.file, entry.state]), upFiles.map((file) => [file, "applied"]))
      assert.isTrue(after.every((entry) => entry.appliedAt instanceof Date))
    }))

  it.effect("refuses to run when an applied file no longer matches its checksum, naming the file", () =>
    Effect.gen(function*() {
      const database = yield* emptyDatabase
      yield* Migrations.migrate.pipe(inDatabase(database))
      yield* query(database, "UPDATE schema_migrations SET checksum = 'tampered' WHERE version = 1")
      const error = yield* Effect.flip(Migrations.migrate.pipe(inDatabase(database)))
      assert.strictEqual(error._tag, "MigrationChecksumMismatch")
      assert.include(error.message, "0001_messages.up.sql")
      const status = yield* Migrations.status.pipe(inDatabase(database))
      assert.strictEqual(status[0]?.state, "changed")
    }))

  it.effect("applies each migration once when two runs start together", () =>
    Effect.gen(function*() {
      const database = yield* emptyDatabase
      const [first, second] = yield* Effect.all(
        [Migrations.migrate.pipe(inDatabase(database)), Migrations.migrate.pipe(inDatabase(database))],
        { concurrency: 2 }
      )
      const appliedFiles = [...first, ...second].map((migration) => migration.upFile).sort()
      assert.deepStrictEqual(appliedFiles, upFiles)
      const recorded = yield* query<{ count: number }>(database, "SELECT count(*)::int AS count FROM schema_migrations")
      assert.strictEqual(recorded[0]?.count, upFiles.length)
    }))

  it.effect("rolls back with the down files and migrates up again", () =>
    Effect.gen(function*() {
      const database = yield* emptyDatabase
      yield* Migrations.migrate.pipe(inDatabase(database))

      const partly = yield* Migrations.rollback({ to: 1 }).pipe(inDatabase(database))
      assert.deepStrictEqual(partly.map((migration) => migration.upFile), upFiles.slice(1).reverse())
      assert.include(yield* tables(database), "messages")

      const fully = yield* Migrations.rollback({ to: 0 }).pipe(inDatabase(database))
      assert.deepStrictEqual(fully.map((migration) => migration.upFile), upFiles.slice(0, 1))
      assert.deepStrictEqual(yield* tables(database), ["schema_migrations"])

      const again = yield* Migrations.migrate.pipe(inDatabase(database))
      assert.deepStrictEqual(again.map((migration) => migration.upFile), upFiles)
      assert.include(yield* tables(database), "messages")
    }))
})
