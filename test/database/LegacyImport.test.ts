/**
 * `db import` from a legacy single-table database: a second test database
 * holding `telegram_messages`, copied into a migrated one.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Redacted } from "effect"
import { importLegacyMessages } from "../../src/layers/LegacyImport.ts"
import { configLayer, makeTestDatabase, query, type TestDatabase } from "../support/Database.ts"

const legacyRows = 20_000

const legacyDatabase = Effect.gen(function*() {
  const legacy = yield* makeTestDatabase("legacy_source", { migrate: false })
  yield* query(legacy, `CREATE TABLE telegram_messages (
    channel_id bigint NOT NULL, message_id bigint NOT NULL, date timestamp NOT NULL, text text, payload json,
    PRIMARY KEY (channel_id, message_id))`)
  yield* query(legacy, `INSERT INTO telegram_messages
    SELECT (g % 7) + 1000000000001, g, timestamp '2024-03-01' + g * interval '1 minute',
           CASE WHEN g % 100 = 0 THEN NULL ELSE 'mensagem ' || g END,
           json_build_object('id', g, 'entities', json_build_array(json_build_object('type', 'bold')),
                             'media', CASE WHEN g % 10 = 0 THEN json_build_object('type', 'photo') END)
    FROM generate_series(1, ${legacyRows}) g`)
  return legacy
})

const count = (database: TestDatabase, statement: string) =>
  query<{ n: number }>(database, statement).pipe(Effect.map((rows) => rows[0]?.n ?? -1))

const run = (target: TestDatabase, legacy: TestDatabase, batchSize: number) =>
  importLegacyMessages({ from: legacy.migrationUrl, batchSize }).pipe(Effect.provide(configLayer(target)))

describe("legacy import", () => {
  it.effect("copies every row as version 0, with its payload, entities, media and channel", () =>
    Effect.gen(function*() {
      const legacy = yield* legacyDatabase
      const target = yield* makeTestDatabase("legacy_target")
      const seen: Array<number> = []
      const result = yield* importLegacyMessages({
        from: legacy.migrationUrl,
        batchSize: 5000,
        onProgress: (progress) => Effect.sync(() => seen.push(progress.copied))
      }).pipe(Effect.provide(configLayer(target)))
      assert.deepStrictEqual(result, { copied: legacyRows, total: legacyRows, inserted: legacyRows })
      assert.deepStrictEqual(seen, [0, 5000, 10000, 15000, 20000])
      assert.strictEqual(yield* count(target, "SELECT count(*)::int AS n FROM messages WHERE version = 0"), legacyRows)
      assert.strictEqual(yield* count(target, "SELECT count(*)::int AS n FROM channels"), 7)
      const [sample] = yield* query(target, `SELECT channel_id::text, text, entities, media, raw->>'id' AS id,
        date = timestamptz '2024-03-01 00:00:00Z' + interval '10 minutes' AS date_ok
        FROM messages WHERE message_id = 10`)
      assert.deepStrictEqual(sample, {
        channel_id: "1000000000004", text: "mensagem 10", entities: [{ type: "bold" }], media: { type: "photo" }, id: "10", date_ok: true
      })
      const [nullText] = yield* query(target, "SELECT text, media FROM messages WHERE message_id = 100")
      assert.deepStrictEqual(nullText, { text: "", media: { type: "photo" } })
      const [progress] = yield* query(target, "SELECT copied::int, finished_at IS NOT NULL AS finished FROM legacy_import_progress")
      assert.deepStrictEqual(progress, { copied: legacyRows, finished: true })
    }), { timeout: 120_000 })

  it.effect("is idempotent: a second run inserts nothing, and copies only rows added since", () =>
    Effect.gen(function*() {
      const legacy = yield* legacyDatabase
      const target = yield* makeTestDatabase("legacy_rerun")
      yield* run(target, legacy, 5000)
      const again = yield* run(target, legacy, 5000)
      assert.strictEqual(again.inserted, 0)
      yield* query(legacy, "INSERT INTO telegram_messages VALUES (1000000000009, 1, '2024-04-01', 'nova', '{}')")
      const more = yield* run(target, legacy, 5000)
      assert.strictEqual(more.inserted, 1)
      assert.strictEqual(yield* count(target, "SELECT count(*)::int AS n FROM messages"), legacyRows + 1)
    }), { timeout: 120_000 })

  it.live("resumes after an interruption from its checkpoint, without gaps or duplicates", () =>
    Effect.gen(function*() {
      const legacy = yield* legacyDatabase
      const target = yield* makeTestDatabase("legacy_resume")
      const running = yield* run(target, legacy, 100).pipe(Effect.forkChild)
      const copiedSoFar = count(target, "SELECT coalesce(max(copied), 0)::int AS n FROM legacy_import_progress")
      while ((yield* copiedSoFar) < 2000) yield* Effect.sleep("20 millis")
      yield* Fiber.interrupt(running)

      const checkpointed = yield* copiedSoFar
      const stored = yield* count(target, "SELECT count(*)::int AS n FROM messages")
      assert.isBelow(checkpointed, legacyRows, "interrupted before the end")
      assert.strictEqual(stored, checkpointed, "each batch and its checkpoint commit together")

      const resumed = yield* run(target, legacy, 1000)
      assert.strictEqual(resumed.inserted, legacyRows - checkpointed, "the second run starts where the first stopped")
      assert.strictEqual(yield* count(target, "SELECT count(DISTINCT (channel_id, message_id))::int AS n FROM messages"), legacyRows)
      assert.strictEqual(yield* count(target, "SELECT count(*)::int AS n FROM messages"), legacyRows)
    }), { timeout: 120_000 })

  it.effect("names the step that failed when the source has no legacy table", () =>
    Effect.gen(function*() {
      const empty = yield* makeTestDatabase("legacy_empty", { migrate: false })
      const target = yield* makeTestDatabase("legacy_nothing")
      const error = yield* Effect.flip(
        importLegacyMessages({ from: Redacted.make(Redacted.value(empty.migrationUrl)), batchSize: 10 }).pipe(
          Effect.provide(configLayer(target))
        )
      )
      assert.strictEqual(error._tag, "LegacyImportFailed")
      assert.include(error.message, "count the source rows")
      assert.include(error.message, "telegram_messages")
    }))
})
