/**
 * The UpdateStateStore on PostgreSQL (sql/0013_update_state.up.sql), through
 * PgBouncer in transaction mode: one statement per call. Saves only move
 * state forward (GREATEST), and the table's trigger refuses a save with an
 * epoch below the stored one, and under high availability one that is not
 * the account's current lease (sql/0018_update_state_per_account.up.sql);
 * either refusal becomes `UpdateStateFenced`. Rows belong to the account of
 * the current `LeaseFence` (`default` without one).
 */
import { Duration, Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { DatabaseConfig } from "../services/GatewayConfig.ts"
import {
  OwnerEpoch,
  type StoredMessage,
  UpdateStateError,
  UpdateStateFenced,
  UpdateStateStore
} from "../services/UpdateState.ts"
import { LeaseFence } from "../services/AccountLeases.ts"
import { fencedDetail } from "./PgAccountLeases.ts"
import * as PgClient from "./PgClient.ts"

/** The trigger's refusal, wherever the driver put PostgreSQL's message (the error or its causes). */
const fencedMessage = (error: unknown, depth = 0): string | undefined => {
  if (error === null || error === undefined || depth > 4) return undefined
  const message = String((error as { message?: unknown }).message ?? "")
  if (message.includes("stale update-state epoch")) return message
  return fencedMessage((error as { cause?: unknown }).cause, depth + 1)
}

export const make = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const { statementTimeout } = yield* DatabaseConfig

  const run = (operation: string) => <A, E>(effect: Effect.Effect<A, E>) =>
    effect.pipe(
      Effect.mapError((cause) => new UpdateStateError({ operation, cause })),
      Effect.timeoutOrElse({
        duration: statementTimeout,
        orElse: () =>
          Effect.fail(new UpdateStateError({ operation, cause: new Error(`no answer within ${Duration.format(statementTimeout)}`) }))
      }),
      // The call site is always this helper, so a captured stack would say nothing.
      Effect.withSpan(`UpdateStateStore.${operation}`, undefined, { captureStackTrace: false })
    )

  /** The account whose state this is (sql/0018_update_state_per_account.up.sql): the caller's lease's, else `default`. */
  const currentAccount = Effect.gen(function*() {
    return (yield* LeaseFence)?.account ?? "default"
  })

  const load = Effect.flatMap(currentAccount, (account) => Effect.all({
    channels: sql<{ channel_id: string; pts: number; top_message_id: number }>`
      SELECT channel_id::text AS channel_id, pts, top_message_id FROM telegram_channel_state WHERE account = ${account}`,
    account: sql<{ pts: number; qts: number; date: number; seq: number }>`
      SELECT pts, qts, date, seq FROM telegram_account_state WHERE account = ${account}`,
    floodWaits: sql<{ method: string; chat_id: string; until_ms: number }>`
      SELECT method, chat_id::text AS chat_id, (extract(epoch FROM until) * 1000)::float8 AS until_ms
      FROM telegram_flood_waits WHERE until > now()`
  }).pipe(
    Effect.map(({ account, channels, floodWaits }) => ({
      channels: channels.map((row) => ({ channelId: Number(row.channel_id), pts: row.pts, topMessageId: row.top_message_id })),
      account: account[0],
      floodWaits: floodWaits.map((row) => ({ method: row.method, chatId: Number(row.chat_id), until: Number(row.until_ms) }))
    })),
    run("load")
  ))

  const save: UpdateStateStore["Service"]["save"] = (state) =>
    Effect.gen(function*(): Effect.fn.Return<void, UpdateStateError | UpdateStateFenced> {
      // Read at every save, from the caller's context: a renewed lease applies at once.
      const epoch = yield* (yield* OwnerEpoch)
      const account = yield* currentAccount
      const channels = JSON.stringify(
        state.channels.map((c) => ({ channel_id: c.channelId, pts: c.pts, top_message_id: c.topMessageId }))
      )
      const common = state.account === undefined ? null : JSON.stringify(state.account)
      const write = sql`
        WITH channels AS (
          INSERT INTO telegram_channel_state AS s (account, channel_id, pts, top_message_id, epoch, updated_at)
          SELECT ${account}, c.channel_id, c.pts, c.top_message_id, ${epoch.toString()}::bigint, now()
          FROM json_to_recordset(${channels}::json) AS c(channel_id bigint, pts integer, top_message_id integer)
          ON CONFLICT (account, channel_id) DO UPDATE SET
            pts = GREATEST(s.pts, EXCLUDED.pts),
            top_message_id = GREATEST(s.top_message_id, EXCLUDED.top_message_id),
            epoch = EXCLUDED.epoch, updated_at = now()
          RETURNING 1
        ), account AS (
          INSERT INTO telegram_account_state AS s (account, pts, qts, date, seq, epoch, updated_at)
          SELECT ${account}, a.pts, a.qts, a.date, a.seq, ${epoch.toString()}::bigint, now()
          FROM json_to_record(${common}::json) AS a(pts integer, qts integer, date integer, seq integer)
          WHERE ${common}::json IS NOT NULL
          ON CONFLICT (account) DO UPDATE SET
            pts = GREATEST(s.pts, EXCLUDED.pts), qts = GREATEST(s.qts, EXCLUDED.qts),
            date = GREATEST(s.date, EXCLUDED.date), seq = GREATEST(s.seq, EXCLUDED.seq),
            epoch = EXCLUDED.epoch, updated_at = now()
          RETURNING 1
        )
        SELECT (SELECT count(*) FROM channels)::int AS channels, (SELECT count(*) FROM account)::int AS account`
      yield* write.pipe(
        Effect.catch((cause): Effect.Effect<never, UpdateStateError | UpdateStateFenced> => {
          const fenced = fencedMessage(cause) ?? fencedDetail(cause)
          return fenced !== undefined
            ? Effect.fail(new UpdateStateFenced({ epoch, detail: fenced }))
            : Effect.fail(new UpdateStateError({ operation: "save", cause }))
        })
      )
    }).pipe(
      Effect.timeoutOrElse({
        duration: statementTimeout,
        orElse: () =>
          Effect.fail(new UpdateStateError({ operation: "save", cause: new Error(`no answer within ${Duration.format(statementTimeout)}`) }))
      }),
      // No captured stack, as in `run`: the span's name says where it is.
      Effect.withSpan("UpdateStateStore.save", undefined, { captureStackTrace: false })
    )

  const saveFloodWait: UpdateStateStore["Service"]["saveFloodWait"] = (wait) =>
    sql`
      INSERT INTO telegram_flood_waits (method, chat_id, until)
      VALUES (${wait.method}, ${wait.chatId}::bigint, to_timestamp(${wait.until / 1000}::float8))
      ON CONFLICT (method, chat_id) DO UPDATE SET until = GREATEST(telegram_flood_waits.until, EXCLUDED.until)`.pipe(
      Effect.asVoid,
      run("saveFloodWait")
    )

  const storedMessages = (channelId: number, fromId: number, toId: number) =>
    sql<{ message_id: number; edit_date: number | null; deleted: boolean }>`
      SELECT m.message_id, extract(epoch FROM max(m.edit_date))::int AS edit_date,
        bool_or(m.deleted_at IS NOT NULL) OR bool_or(d.message_id IS NOT NULL) AS deleted
      FROM messages m
      LEFT JOIN message_deletions d ON d.channel_id = m.channel_id AND d.message_id = m.message_id
      WHERE m.channel_id = ${channelId}::bigint AND m.message_id BETWEEN ${fromId} AND ${toId}
      GROUP BY m.message_id`.pipe(
      Effect.map((rows) =>
        rows.map((row): StoredMessage => ({ messageId: row.message_id, editDate: row.edit_date, deleted: row.deleted }))
      ),
      run("storedMessages")
    )

  const chatsOfMessages: UpdateStateStore["Service"]["chatsOfMessages"] = (chatIds, messageIds) =>
    sql<{ channel_id: string; message_id: number }>`
      SELECT DISTINCT channel_id::text, message_id FROM messages
      WHERE channel_id = ANY(${chatIds.map(String)}::bigint[]) AND message_id = ANY(${messageIds}::int[])`.pipe(
      Effect.map((rows) => rows.map((row) => ({ chatId: Number(row.channel_id), messageId: row.message_id }))),
      run("chatsOfMessages")
    )

  return UpdateStateStore.of({ load, save, saveFloodWait, storedMessages, chatsOfMessages })
})

/** Needs a `SqlClient`. */
export const layerNoDeps = Layer.effect(UpdateStateStore, make)

/** With the PgBouncer pool of `database.url`. */
export const layer = layerNoDeps.pipe(Layer.provide(PgClient.layer))
