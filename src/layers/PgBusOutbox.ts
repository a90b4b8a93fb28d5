/**
 * The BusOutbox on PostgreSQL (`bus_relay_marks`, sql/0010_bus_relay.up.sql),
 * through PgBouncer: single statements, no session state.
 */
import { Effect, Layer, Option } from "effect"
import { SqlClient } from "effect/sql"
import { BusOutbox } from "../services/BusOutbox.ts"
import { DatabaseConfig } from "../services/GatewayConfig.ts"
import * as PgClient from "./PgClient.ts"
import { boundedBy, retryConnectFailure, storeError } from "./PgMessageStore.ts"

export const make = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const bounded = boundedBy((yield* DatabaseConfig).statementTimeout)
  const run = (operation: string) => <A, E>(effect: Effect.Effect<A, E>) =>
    effect.pipe(retryConnectFailure, Effect.mapError(storeError(operation)), bounded(operation))

  const readMark = (exchange: string) =>
    sql<{ seq: string }>`SELECT published_seq::text AS seq FROM bus_relay_marks WHERE exchange = ${exchange}`.pipe(
      Effect.map((rows) => Option.map(Option.fromNullishOr(rows[0]), (row) => BigInt(row.seq))),
      run("readMark")
    )

  const saveMark = (exchange: string, seq: bigint) =>
    sql`
      INSERT INTO bus_relay_marks (exchange, published_seq) VALUES (${exchange}, ${seq.toString()}::bigint)
      ON CONFLICT (exchange) DO UPDATE
        SET published_seq = GREATEST(bus_relay_marks.published_seq, EXCLUDED.published_seq), updated_at = now()`.pipe(
      Effect.asVoid,
      run("saveMark")
    )

  const newestSeq = sql<{ seq: string }>`
    SELECT GREATEST(
      (SELECT coalesce(max(event_seq), 0) FROM messages),
      (SELECT coalesce(max(event_seq), 0) FROM message_deletions))::text AS seq`.pipe(
    Effect.map((rows) => BigInt(rows[0]?.seq ?? "0")),
    run("newestSeq")
  )

  const countAfter = (seq: bigint, cap: number) =>
    sql<{ count: number }>`
      SELECT (
        (SELECT count(*) FROM (SELECT 1 FROM messages WHERE event_seq > ${seq.toString()}::bigint LIMIT ${cap}) m) +
        (SELECT count(*) FROM (SELECT 1 FROM message_deletions WHERE event_seq > ${seq.toString()}::bigint LIMIT ${cap}) d)
      )::int AS count`.pipe(
      Effect.map((rows) => Math.min(cap, rows[0]?.count ?? 0)),
      run("countAfter")
    )

  return BusOutbox.of({ readMark, saveMark, newestSeq, countAfter })
})

/** Needs a `SqlClient`. */
export const layerNoDeps = Layer.effect(BusOutbox, make)

/** With the PgBouncer pool of `database.url`. */
export const layer = layerNoDeps.pipe(Layer.provide(PgClient.layer))
