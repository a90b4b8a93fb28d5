/**
 * The ChannelRegistry on PostgreSQL's `channels` table (sql/0001_messages.up.sql),
 * through PgBouncer in transaction mode: single statements, no session state.
 * int8 ids are read back as text (the driver would give bigints).
 */
import { Duration, Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import {
  ChannelRegistry,
  type ChatIdentity,
  type ChatKind,
  type KnownChat,
  type ReadProgress,
  RegistryError
} from "../services/ChannelRegistry.ts"
import { DatabaseConfig } from "../services/GatewayConfig.ts"
import * as PgClient from "./PgClient.ts"

interface ChannelRow {
  readonly channel_id: string
  readonly access_hash: string | null
  readonly username: string | null
  readonly title: string | null
  readonly kind: ChatKind
  readonly last_pts: number | null
  readonly last_message_id: number | null
}

const fromRow = (row: ChannelRow): KnownChat => ({
  channelId: Number(row.channel_id),
  accessHash: row.access_hash,
  username: row.username,
  title: row.title,
  kind: row.kind,
  lastPts: row.last_pts,
  lastMessageId: row.last_message_id
})

export const make = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const { statementTimeout } = yield* DatabaseConfig

  const run = (operation: string) => <A, E>(effect: Effect.Effect<A, E>) =>
    effect.pipe(
      Effect.mapError((cause) => new RegistryError({ operation, cause })),
      Effect.timeoutOrElse({
        duration: statementTimeout,
        orElse: () =>
          Effect.fail(new RegistryError({ operation, cause: new Error(`no answer within ${Duration.format(statementTimeout)}`) }))
      }),
      Effect.withSpan(`ChannelRegistry.${operation}`)
    )

  const list = sql<ChannelRow>`
    SELECT channel_id::text AS channel_id, access_hash, username, title, kind, last_pts, last_message_id
    FROM channels ORDER BY channel_id`.pipe(Effect.map((rows) => rows.map(fromRow)), run("list"))

  const remember = (chat: ChatIdentity) =>
    sql`
      INSERT INTO channels (channel_id, access_hash, username, title, kind, updated_at)
      VALUES (${chat.channelId}::bigint, ${chat.accessHash}, ${chat.username}, ${chat.title}, ${chat.kind}, now())
      ON CONFLICT (channel_id) DO UPDATE SET
        access_hash = EXCLUDED.access_hash, username = EXCLUDED.username, title = EXCLUDED.title,
        kind = EXCLUDED.kind, updated_at = now()`.pipe(Effect.asVoid, run("remember"))

  const saveProgress = (progress: ReadonlyArray<ReadProgress>) =>
    progress.length === 0 ? Effect.void : sql`
      UPDATE channels SET
        last_message_id = GREATEST(channels.last_message_id, p.last_message_id),
        last_pts = GREATEST(channels.last_pts, p.last_pts),
        last_seen_at = now(), updated_at = now()
      FROM json_to_recordset(${JSON.stringify(progress.map((p) => ({
      channel_id: p.channelId,
      last_message_id: p.lastMessageId,
      last_pts: p.lastPts
    })))}::json) AS p(channel_id bigint, last_message_id integer, last_pts integer)
      WHERE channels.channel_id = p.channel_id`.pipe(Effect.asVoid, run("saveProgress"))

  return ChannelRegistry.of({ list, remember, saveProgress })
})

/** Needs a `SqlClient`. */
export const layerNoDeps = Layer.effect(ChannelRegistry, make)

/** With the PgBouncer pool of `database.url`. */
export const layer = layerNoDeps.pipe(Layer.provide(PgClient.layer))
