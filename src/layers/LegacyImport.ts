/**
 * Copies messages from the single-table layout many Telegram archivers start
 * with into this schema:
 *
 *   telegram_messages (channel_id bigint, message_id bigint, date timestamp[tz],
 *                      text text, payload json[b])
 *
 * Each legacy row becomes version 0 of its message: `payload` is kept whole
 * as `raw`, its `entities` array and `media` object (when present) fill those
 * columns, and the channel is registered in `channels`.
 *
 * Keyset pagination on (channel_id, message_id), so every batch is an index
 * range however far along the import is. Each batch is written and the
 * checkpoint (`legacy_import_progress`, migration 0007) advanced in one
 * transaction: after an interruption the import resumes exactly after the
 * last committed batch, and a rerun copies only rows added since. Rows
 * already present are skipped (ON CONFLICT DO NOTHING on the message key).
 */
import { PgClient } from "@effect/sql-pg"
import { Effect, Layer, Redacted } from "effect"
import { Reactivity } from "effect/reactivity"
import type { SqlClient } from "effect/sql"
import { DatabaseConfig } from "../services/GatewayConfig.ts"
import { type ImportOptions, type ImportProgress, LegacyImport, LegacyImportFailed } from "../services/LegacyImport.ts"
import { target } from "./PgClient.ts"

interface LegacyRow {
  readonly channel_id: string
  readonly message_id: string
  readonly date: Date
  readonly text: string | null
  readonly payload: unknown
}

interface Checkpoint {
  readonly last_channel_id: string | null
  readonly last_message_id: string | null
  readonly copied: string
}

/** The checkpoint's key: where the rows come from, without credentials. */
export const sourceName = (from: Redacted.Redacted<string>): string => {
  const url = new URL(Redacted.value(from))
  return `${url.hostname}:${url.port || "5432"}${url.pathname}/telegram_messages`
}

const step = (operation: string) => <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.mapError(effect, (cause) => new LegacyImportFailed({ operation, cause }))

const connect = (url: Redacted.Redacted<string>, role: string) =>
  PgClient.makeClient({ url, ...target(url), prepare: false, applicationName: "telegram-gateway-import" }).pipe(
    Effect.provide(Reactivity.layer),
    step(`connect to the ${role} database`)
  )

const readBatch = (source: SqlClient.SqlClient, after: Checkpoint, limit: number) => {
  // Ids come back as text (the driver would give bigints, which JSON cannot
  // carry); ORDER BY names t.* so it sorts the bigints, not these texts.
  const columns = source`t.channel_id::text AS channel_id, t.message_id::text AS message_id,
    t.date::timestamptz AS date, t.text, t.payload::jsonb AS payload`
  return (after.last_channel_id === null || after.last_message_id === null
    ? source<LegacyRow>`SELECT ${columns} FROM telegram_messages t ORDER BY t.channel_id, t.message_id LIMIT ${limit}`
    : source<LegacyRow>`
        SELECT ${columns} FROM telegram_messages t
        WHERE (t.channel_id, t.message_id) > (${after.last_channel_id}::bigint, ${after.last_message_id}::bigint)
        ORDER BY t.channel_id, t.message_id LIMIT ${limit}`).pipe(step("read a batch from the source"))
}

/** Inserts one batch and advances the checkpoint, atomically; returns the rows inserted. */
const writeBatch = (target: SqlClient.SqlClient, name: string, rows: ReadonlyArray<LegacyRow>) => {
  const last = rows[rows.length - 1]!
  const batch = JSON.stringify(rows)
  return target.withTransaction(Effect.gen(function*() {
    // Drawn first, before the transaction writes, as the gateway's batches
    // draw theirs (sql/0057): an API poll running beside the import never
    // passes an imported row still to commit.
    const drawn = yield* target<{ seqs: string }>`SELECT draw_event_seqs(${rows.length}::integer)::text AS seqs`
    const seqs = drawn[0]!.seqs
    const [written] = yield* target<{ inserted: number }>`
      WITH batch AS (
        SELECT * FROM ROWS FROM (jsonb_to_recordset(${batch}::jsonb)
          AS (channel_id bigint, message_id integer, date timestamptz, text text, payload jsonb))
          WITH ORDINALITY AS b(channel_id, message_id, date, text, payload, ord)
      ), known_channels AS (
        INSERT INTO channels (channel_id) SELECT DISTINCT channel_id FROM batch ON CONFLICT DO NOTHING
      ), inserted AS (
        INSERT INTO messages (event_seq, channel_id, message_id, version, date, text, entities, media, raw, received_at)
        SELECT (${seqs}::bigint[])[ord], channel_id, message_id, 0, date, coalesce(text, ''),
               CASE WHEN jsonb_typeof(payload -> 'entities') = 'array' THEN payload -> 'entities' ELSE '[]' END,
               CASE WHEN jsonb_typeof(payload -> 'media') = 'object' THEN payload -> 'media' END,
               coalesce(payload, '{}'), date
        FROM batch
        ON CONFLICT DO NOTHING
        RETURNING 1
      )
      SELECT count(*)::int AS inserted FROM inserted`
    yield* target`
      INSERT INTO legacy_import_progress (source, last_channel_id, last_message_id, copied, updated_at)
      VALUES (${name}, ${last.channel_id}::bigint, ${last.message_id}::bigint, ${rows.length}, now())
      ON CONFLICT (source) DO UPDATE SET
        last_channel_id = EXCLUDED.last_channel_id,
        last_message_id = EXCLUDED.last_message_id,
        copied = legacy_import_progress.copied + EXCLUDED.copied,
        updated_at = now(),
        finished_at = NULL`
    return written?.inserted ?? 0
  })).pipe(step("write a batch to the gateway database"))
}

/**
 * Runs the import to the end of the legacy table, resuming from this
 * source's checkpoint. Connects to the gateway with `database.url`.
 */
export const importLegacyMessages = Effect.fn("LegacyImport.importLegacyMessages")(function*(options: ImportOptions) {
  const config = yield* DatabaseConfig.pipe(step("read database configuration"))
  const source = yield* connect(options.from, "source")
  const target = yield* connect(config.url, "gateway")
  const name = sourceName(options.from)
  const report = options.onProgress ?? (() => Effect.void)

  const [counted] = yield* source<{ total: string }>`SELECT count(*)::text AS total FROM telegram_messages`.pipe(
    step("count the source rows")
  )
  const total = Number(counted?.total ?? 0)
  const [saved] = yield* target<Checkpoint>`
    SELECT last_channel_id::text AS last_channel_id, last_message_id::text AS last_message_id, copied::text AS copied
    FROM legacy_import_progress WHERE source = ${name}`.pipe(step("read the import checkpoint"))
  let checkpoint: Checkpoint = saved ?? { last_channel_id: null, last_message_id: null, copied: "0" }
  let copied = Number(checkpoint.copied)
  let inserted = 0
  yield* report({ copied, total, inserted })

  while (true) {
    const rows = yield* readBatch(source, checkpoint, options.batchSize)
    const last = rows[rows.length - 1]
    if (last === undefined) break
    inserted += yield* writeBatch(target, name, rows)
    copied += rows.length
    checkpoint = { last_channel_id: last.channel_id, last_message_id: last.message_id, copied: String(copied) }
    yield* report({ copied, total, inserted })
  }
  yield* target`UPDATE legacy_import_progress SET finished_at = now() WHERE source = ${name}`.pipe(
    step("record the end of the import")
  )
  return { copied, total, inserted } satisfies ImportProgress
}, Effect.scoped)

/** The LegacyImport service: each import connects to the legacy database and to the gateway's (`database.url`). */
export const layer = Layer.succeed(LegacyImport, LegacyImport.of({ importMessages: importLegacyMessages }))
