/**
 * BackfillRequests on PostgreSQL (sql/0030_backfill_requests.up.sql), through
 * PgBouncer in transaction mode: one statement per call. Progress only moves
 * forward (GREATEST), so a late write of an older page cannot move it back.
 */
import { Duration, Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { LeaseFence } from "../services/AccountLeases.ts"
import {
  type BackfillRequest,
  BackfillRequests,
  type BackfillStatus,
  BackfillStoreError
} from "../services/BackfillRequests.ts"
import { DatabaseConfig } from "../services/GatewayConfig.ts"
import * as PgClient from "./PgClient.ts"

interface Row {
  readonly id: string
  readonly account: string
  readonly channel: string
  readonly since_ms: number | null
  readonly until_ms: number | null
  readonly from_id: number | null
  readonly until_id: number | null
  readonly status: BackfillStatus
  readonly after_id: number | null
  readonly up_to_id: number | null
  readonly cursor_id: number | null
  readonly messages: number
  readonly error: string | null
  readonly requested_ms: number
  readonly started_ms: number | null
  readonly finished_ms: number | null
}

const date = (ms: number | null) => (ms === null ? null : new Date(Number(ms)))

const fromRow = (row: Row): BackfillRequest => ({
  id: Number(row.id),
  account: row.account,
  channel: row.channel,
  since: date(row.since_ms),
  until: date(row.until_ms),
  fromId: row.from_id,
  untilId: row.until_id,
  status: row.status,
  afterId: row.after_id,
  upToId: row.up_to_id,
  cursorId: row.cursor_id,
  messages: row.messages,
  error: row.error,
  requestedAt: new Date(Number(row.requested_ms)),
  startedAt: date(row.started_ms),
  finishedAt: date(row.finished_ms)
})

/** int8 and timestamps as plain numbers (the driver gives bigints and Dates otherwise). */
const columns = `id::text AS id, account, channel,
  (extract(epoch FROM since) * 1000)::float8 AS since_ms, (extract(epoch FROM until) * 1000)::float8 AS until_ms,
  from_id, until_id, status, after_id, up_to_id, cursor_id, messages, error,
  (extract(epoch FROM requested_at) * 1000)::float8 AS requested_ms,
  (extract(epoch FROM started_at) * 1000)::float8 AS started_ms,
  (extract(epoch FROM finished_at) * 1000)::float8 AS finished_ms`

const iso = (value: Date | null) => (value === null ? null : value.toISOString())

export const make = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const { statementTimeout } = yield* DatabaseConfig

  const run = (operation: string) => <A, E>(effect: Effect.Effect<A, E>) =>
    effect.pipe(
      Effect.mapError((cause) => new BackfillStoreError({ operation, cause })),
      Effect.timeoutOrElse({
        duration: statementTimeout,
        orElse: () =>
          Effect.fail(new BackfillStoreError({ operation, cause: new Error(`no answer within ${Duration.format(statementTimeout)}`) }))
      }),
      Effect.withSpan(`BackfillRequests.${operation}`)
    )

  const submit: BackfillRequests["Service"]["submit"] = (spec) =>
    // One statement: an unfinished twin is returned as it is, else the new row.
    sql<Row & { readonly attached: boolean }>`
      WITH twin AS (
        SELECT * FROM backfill_requests
        WHERE account = ${spec.account} AND channel = ${spec.channel} AND status IN ('pending', 'running')
          AND since IS NOT DISTINCT FROM ${iso(spec.since)}::timestamptz
          AND until IS NOT DISTINCT FROM ${iso(spec.until)}::timestamptz
          AND from_id IS NOT DISTINCT FROM ${spec.fromId}::integer
          AND until_id IS NOT DISTINCT FROM ${spec.untilId}::integer
        ORDER BY id LIMIT 1
      ), inserted AS (
        INSERT INTO backfill_requests (account, channel, since, until, from_id, until_id)
        SELECT ${spec.account}, ${spec.channel}, ${iso(spec.since)}::timestamptz, ${iso(spec.until)}::timestamptz,
          ${spec.fromId}::integer, ${spec.untilId}::integer
        WHERE NOT EXISTS (SELECT 1 FROM twin)
        RETURNING *
      )
      SELECT ${sql.unsafe(columns)}, true AS attached FROM twin
      UNION ALL
      SELECT ${sql.unsafe(columns)}, false AS attached FROM inserted`.pipe(
      Effect.map((rows) => ({ request: fromRow(rows[0]!), attached: rows[0]!.attached })),
      run("submit")
    )

  const get: BackfillRequests["Service"]["get"] = (id) =>
    sql<Row>`SELECT ${sql.unsafe(columns)} FROM backfill_requests WHERE id = ${id}`.pipe(
      Effect.map((rows) => (rows[0] === undefined ? undefined : fromRow(rows[0]))),
      run("get")
    )

  const unfinished = Effect.gen(function*() {
    const account = (yield* LeaseFence)?.account ?? "default"
    const rows = yield* sql<Row>`
      SELECT ${sql.unsafe(columns)} FROM backfill_requests
      WHERE account = ${account} AND status IN ('pending', 'running') ORDER BY id`
    return rows.map(fromRow)
  }).pipe(run("unfinished"))

  const start: BackfillRequests["Service"]["start"] = (id, range) =>
    sql`
      UPDATE backfill_requests SET status = 'running', after_id = ${range.afterId}, up_to_id = ${range.upToId},
        started_at = coalesce(started_at, now()), updated_at = now()
      WHERE id = ${id}`.pipe(Effect.asVoid, run("start"))

  const progress: BackfillRequests["Service"]["progress"] = (id, cursorId, messages) =>
    sql`
      UPDATE backfill_requests SET cursor_id = GREATEST(coalesce(cursor_id, 0), ${cursorId}),
        messages = GREATEST(messages, ${messages}), updated_at = now()
      WHERE id = ${id}`.pipe(Effect.asVoid, run("progress"))

  const finish: BackfillRequests["Service"]["finish"] = (id, messages) =>
    sql`
      UPDATE backfill_requests SET status = 'done', cursor_id = up_to_id, messages = GREATEST(messages, ${messages}),
        finished_at = now(), updated_at = now()
      WHERE id = ${id}`.pipe(Effect.asVoid, run("finish"))

  const fail: BackfillRequests["Service"]["fail"] = (id, error) =>
    sql`
      UPDATE backfill_requests SET status = 'failed', error = ${error}, finished_at = now(), updated_at = now()
      WHERE id = ${id}`.pipe(Effect.asVoid, run("fail"))

  return BackfillRequests.of({ submit, get, unfinished, start, progress, finish, fail })
})

/** Needs a `SqlClient`. */
export const layerNoDeps = Layer.effect(BackfillRequests, make)

/** With the PgBouncer pool of `database.url`. */
export const layer = layerNoDeps.pipe(Layer.provide(PgClient.layer))
