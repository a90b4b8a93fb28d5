/**
 * deploy/scripts/backup.sh against the real PostgreSQL and RabbitMQ: the dump
 * restores into a fresh database with its rows, the session and config are
 * archived, checksums verify, old backups are pruned, and a failed run leaves
 * nothing that looks like a backup.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Redacted } from "effect"
import * as Fs from "node:fs/promises"
import * as Os from "node:os"
import * as Path from "node:path"
import { makeTestDatabase, query } from "../support/Database.ts"
import { deployPath, runCommand } from "./Tools.ts"

const script = deployPath("scripts", "backup.sh")

const scratchDirectory = (prefix: string) =>
  Effect.acquireRelease(
    Effect.promise(() => Fs.mkdtemp(Path.join(Os.tmpdir(), prefix))),
    (path) => Effect.promise(() => Fs.rm(path, { recursive: true, force: true }))
  )

/** A session directory and a config directory laid out as install.sh makes them. */
const hostFiles = Effect.gen(function*() {
  const base = yield* scratchDirectory("backup-host-")
  const sessionDir = Path.join(base, ".session")
  const configDir = Path.join(base, "telegram-gateway")
  yield* Effect.promise(async () => {
    await Fs.mkdir(sessionDir, { mode: 0o700 })
    await Fs.writeFile(Path.join(sessionDir, "telegram.session"), "1BQANOTASESSION", { mode: 0o600 })
    await Fs.mkdir(configDir)
    await Fs.writeFile(Path.join(configDir, "gateway.env"), "TELEGRAM_API_ID=12345\n")
  })
  return { sessionDir, configDir }
})

const listing = (directory: string) => Effect.promise(() => Fs.readdir(directory)).pipe(Effect.map((names) => names.sort()))

describe("backup.sh", () => {
  it.effect("is valid bash", () =>
    Effect.gen(function*() {
      const result = yield* runCommand("bash", ["-n", script])
      assert.strictEqual(result.code, 0, result.stderr)
    }))

  it.effect("backs up the database, session, config and RabbitMQ definitions, and the dump restores", () =>
    Effect.gen(function*() {
      const source = yield* makeTestDatabase("backup_source", { migrate: false })
      yield* query(source, "CREATE TABLE backup_probe (id int PRIMARY KEY, note text NOT NULL)")
      yield* query(source, "INSERT INTO backup_probe VALUES (1, 'kept by the backup')")
      const { sessionDir, configDir } = yield* hostFiles
      const output = yield* scratchDirectory("backup-output-")

      const result = yield* runCommand("bash", [
        script,
        "--output", output,
        "--database-url", Redacted.value(source.migrationUrl),
        "--session-dir", sessionDir,
        "--config-dir", configDir,
        "--env-file", "/nonexistent"
      ])
      assert.strictEqual(result.code, 0, result.stderr)
      const backup = result.stdout.trim()
      assert.match(Path.basename(backup), /^telegram-gateway-\d{8}T\d{6}Z$/)
      assert.deepStrictEqual(yield* listing(output), [Path.basename(backup)])
      assert.deepStrictEqual(yield* listing(backup), [
        "SHA256SUMS", "config.tar", "database.dump", "rabbitmq-definitions.json", "session.tar"
      ])
      // The password went through PGPASSWORD, never into a log line.
      assert.notInclude(result.stderr, "telegram_gateway:telegram_gateway@")

      for (const name of yield* listing(backup)) {
        const stat = yield* Effect.promise(() => Fs.stat(Path.join(backup, name)))
        assert.strictEqual(stat.mode & 0o077, 0, `${name} is readable by others`)
      }
      const sums = yield* runCommand("sha256sum", ["--check", "SHA256SUMS"], { cwd: backup })
      assert.strictEqual(sums.code, 0, sums.stdout + sums.stderr)

      const session = yield* runCommand("tar", ["--list", "--verbose", "--file", Path.join(backup, "session.tar")])
      assert.match(session.stdout, /-rw------- .* \.session\/telegram\.session/)
      const definitions = JSON.parse(yield* Effect.promise(() => Fs.readFile(Path.join(backup, "rabbitmq-definitions.json"), "utf8")))
      assert.isArray(definitions.exchanges)

      const target = yield* makeTestDatabase("backup_restore", { migrate: false })
      const restore = yield* runCommand("pg_restore", [
        "--no-owner", "--exit-on-error", "--dbname", Redacted.value(target.migrationUrl), Path.join(backup, "database.dump")
      ])
      assert.strictEqual(restore.code, 0, restore.stderr)
      const rows = yield* query<{ note: string }>(target, "SELECT note FROM backup_probe")
      assert.deepStrictEqual(rows.map((row) => row.note), ["kept by the backup"])
    }).pipe(Effect.scoped), { timeout: 120_000 })

  it.effect("keeps only the newest --keep backups", () =>
    Effect.gen(function*() {
      const source = yield* makeTestDatabase("backup_prune", { migrate: false })
      const { sessionDir, configDir } = yield* hostFiles
      const output = yield* scratchDirectory("backup-output-")
      for (const old of ["telegram-gateway-20240101T000000Z", "telegram-gateway-20240102T000000Z", "telegram-gateway-20240103T000000Z"]) {
        yield* Effect.promise(() => Fs.mkdir(Path.join(output, old)))
      }
      const result = yield* runCommand("bash", [
        script, "--output", output, "--keep", "2", "--no-rabbitmq", "--env-file", "/nonexistent",
        "--database-url", Redacted.value(source.migrationUrl), "--session-dir", sessionDir, "--config-dir", configDir
      ])
      assert.strictEqual(result.code, 0, result.stderr)
      assert.deepStrictEqual(yield* listing(output), ["telegram-gateway-20240103T000000Z", Path.basename(result.stdout.trim())])
    }).pipe(Effect.scoped))

  it.effect("leaves no backup behind when the database cannot be dumped", () =>
    Effect.gen(function*() {
      const { sessionDir, configDir } = yield* hostFiles
      const output = yield* scratchDirectory("backup-output-")
      const result = yield* runCommand("bash", [
        script, "--output", output, "--no-rabbitmq", "--env-file", "/nonexistent",
        "--database-url", "postgres://telegram_gateway:telegram_gateway@127.0.0.1:5432/tg_test_does_not_exist",
        "--session-dir", sessionDir, "--config-dir", configDir
      ])
      assert.notStrictEqual(result.code, 0)
      assert.include(result.stderr, "pg_dump failed")
      assert.deepStrictEqual(yield* listing(output), [])
    }).pipe(Effect.scoped))

  it.effect("reads the database URL and session path from the gateway's env file", () =>
    Effect.gen(function*() {
      const source = yield* makeTestDatabase("backup_env", { migrate: false })
      const { sessionDir, configDir } = yield* hostFiles
      const output = yield* scratchDirectory("backup-output-")
      const envFile = Path.join(configDir, "gateway.env")
      yield* Effect.promise(() =>
        Fs.writeFile(
          envFile,
          `DATABASE_MIGRATION_URL="${Redacted.value(source.migrationUrl)}"\nTELEGRAM_SESSION_FILE=${sessionDir}/telegram.session\n`
        )
      )
      const result = yield* runCommand("bash", [script, "--output", output, "--no-rabbitmq", "--env-file", envFile, "--config-dir", configDir])
      assert.strictEqual(result.code, 0, result.stderr)
      assert.include(result.stderr, `archiving the session (${sessionDir})`)
      assert.include(result.stderr, source.name)
    }).pipe(Effect.scoped))
})

const restoreScript = deployPath("scripts", "restore.sh")

describe("restore.sh", () => {
  it.effect("prints its usage with --help and refuses a call without a database", () =>
    Effect.gen(function*() {
      const help = yield* runCommand("bash", [restoreScript, "--help"])
      assert.strictEqual(help.code, 0, help.stderr)
      assert.include(help.stdout, "--database-url")
      const bad = yield* runCommand("bash", [restoreScript, "/tmp"])
      assert.strictEqual(bad.code, 2)
      assert.include(bad.stderr, "--database-url is required")
    }))

  it.effect("round trip: what backup.sh saved comes back, twice the same, and a damaged backup is refused", () =>
    Effect.gen(function*() {
      const source = yield* makeTestDatabase("restore_source", { migrate: false })
      yield* query(source, "CREATE TABLE backup_probe (id int PRIMARY KEY, note text NOT NULL)")
      yield* query(source, "INSERT INTO backup_probe VALUES (1, 'first'), (2, 'second')")
      const { sessionDir, configDir } = yield* hostFiles
      const output = yield* scratchDirectory("restore-output-")
      const backed = yield* runCommand("bash", [
        script, "--output", output, "--database-url", Redacted.value(source.migrationUrl),
        "--session-dir", sessionDir, "--config-dir", configDir, "--env-file", "/nonexistent", "--no-rabbitmq"
      ])
      assert.strictEqual(backed.code, 0, backed.stderr)
      const backup = backed.stdout.trim()

      // A host that has moved on: other rows, another session, another setting.
      const target = yield* makeTestDatabase("restore_target", { migrate: false })
      yield* query(target, "CREATE TABLE backup_probe (id int PRIMARY KEY, note text NOT NULL)")
      yield* query(target, "INSERT INTO backup_probe VALUES (3, 'written after the backup')")
      const host = yield* scratchDirectory("restore-host-")
      const targetSession = Path.join(host, ".session")
      const targetConfig = Path.join(host, "etc")
      yield* Effect.promise(async () => {
        await Fs.mkdir(targetSession, { mode: 0o755 })
        await Fs.writeFile(Path.join(targetSession, "telegram.session"), "OTHER", { mode: 0o644 })
        await Fs.writeFile(Path.join(targetSession, "stray"), "left over")
      })
      const restore = runCommand("bash", [
        restoreScript, backup, "--database-url", Redacted.value(target.migrationUrl),
        "--session-dir", targetSession, "--config-dir", targetConfig
      ])

      const dry = yield* runCommand("bash", [
        restoreScript, backup, "--database-url", Redacted.value(target.migrationUrl), "--session-dir", targetSession, "--dry-run"
      ])
      assert.strictEqual(dry.code, 0, dry.stderr)
      assert.include(dry.stdout, "pg_restore")
      assert.deepStrictEqual((yield* query<{ id: number }>(target, "SELECT id FROM backup_probe")).map((row) => row.id), [3])

      for (const round of [1, 2]) {
        const result = yield* restore
        assert.strictEqual(result.code, 0, `round ${round}: ${result.stderr}`)
        assert.notInclude(result.stdout + result.stderr, "telegram_gateway:telegram_gateway@")
        const rows = yield* query<{ id: number; note: string }>(target, "SELECT id, note FROM backup_probe ORDER BY id")
        assert.deepStrictEqual(rows.map((row) => `${row.id} ${row.note}`), ["1 first", "2 second"], `round ${round}`)
        assert.deepStrictEqual(yield* listing(targetSession), ["telegram.session"])
        assert.strictEqual(
          yield* Effect.promise(() => Fs.readFile(Path.join(targetSession, "telegram.session"), "utf8")),
          "1BQANOTASESSION"
        )
        assert.strictEqual((yield* Effect.promise(() => Fs.stat(targetSession))).mode & 0o777, 0o700)
        assert.strictEqual((yield* Effect.promise(() => Fs.stat(Path.join(targetSession, "telegram.session")))).mode & 0o777, 0o600)
        assert.strictEqual(
          yield* Effect.promise(() => Fs.readFile(Path.join(targetConfig, "gateway.env"), "utf8")),
          "TELEGRAM_API_ID=12345\n"
        )
      }

      // One flipped byte in the dump: refused before anything is touched.
      yield* query(target, "INSERT INTO backup_probe VALUES (4, 'after the restore')")
      yield* Effect.promise(async () => {
        const dump = Path.join(backup, "database.dump")
        const bytes = await Fs.readFile(dump)
        bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 0xff
        await Fs.writeFile(dump, bytes)
      })
      const damaged = yield* restore
      assert.strictEqual(damaged.code, 1)
      assert.include(damaged.stderr, "checksums do not match")
      assert.deepStrictEqual((yield* query<{ id: number }>(target, "SELECT id FROM backup_probe ORDER BY id")).map((row) => row.id), [1, 2, 4])
    }).pipe(Effect.scoped), { timeout: 120_000 })
})
