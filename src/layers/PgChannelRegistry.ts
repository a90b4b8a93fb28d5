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
}

const fromRow = (row: ChannelRow): KnownChat => ({
  channelId: Number(row.channel_id),
  accessHash: row.access_hash,
  username: row.username,
  title: row.title,
  kind: row.kind
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
    SELECT channel_id::text AS channel_id, access_hash, username, title, kind
    FROM channels ORDER BY channel_id`.pipe(Effect.map((rows) => rows.map(fromRow)), run("list"))

  const remember = (chat: ChatIdentity) =>
    sql`
      INSERT INTO channels (channel_id, access_hash, username, title, kind, updated_at)
      VALUES (${chat.channelId}::bigint, ${chat.accessHash}, ${chat.username}, ${chat.title}, ${chat.kind}, now())
      ON CONFLICT (channel_id) DO UPDATE SET
        access_hash = EXCLUDED.access_hash, username = EXCLUDED.username, title = EXCLUDED.title,
        kind = EXCLUDED.kind, updated_at = now()`.pipe(Effect.asVoid, run("remember"))

  return ChannelRegistry.of({ list, remember })
})

/** Needs a `SqlClient`. */
export const layerNoDeps = Layer.effect(ChannelRegistry, make)

/** With the PgBouncer pool of `database.url`. */
export const layer = layerNoDeps.pipe(Layer.provide(PgClient.layer))
