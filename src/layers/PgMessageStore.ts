/**
 * The MessageStore on PostgreSQL (sql/0001_messages.up.sql), through PgBouncer.
 *
 * A batch is one statement, `write_events` (sql/0047), in a transaction of
 * its own; rows travel as one JSON parameter per kind of event, expanded by
 * `json_to_recordset`, so a batch of any size is one round trip and never
 * hits the bind-parameter limit. The stable key is the primary key: a
 * replayed event conflicts and inserts nothing.
 *
 * Deletions and versions of the same message may be written by two writers
 * at once, and neither would see the other's uncommitted row. A transaction
 * advisory lock orders them: batches of versions share it, a batch holding a
 * deletion takes it alone, so whichever commits second sees the first.
 * Deletions are rare, so version batches almost never wait.
 */
import { type Array, Clock, Duration, Effect, Layer, Metric, Schedule, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { isSqlError, type SqlError } from "effect/sql/SqlError"
import {
  type ChannelId,
  MessageCreated,
  MessageDeleted,
  MessageEdited,
  type MessageEvent,
  type MessageId,
  messageVersion,
  TelegramMessage
} from "../domain/Message.ts"
import { decodeText, encodeText, escapeUnsafe, escapeUnsafeDeep } from "../domain/PgSafeText.ts"
import { retryAfterFailure } from "../domain/RetryAfterFailure.ts"
import { DatabaseConfig } from "../services/GatewayConfig.ts"
import { MessageStore, type StoredVersion, StoreError, type WriteSummary } from "../services/MessageStore.ts"
import * as Metrics from "../services/Metrics.ts"
import * as PgClient from "./PgClient.ts"

/** Daily partitions kept ready ahead of today (plain PostgreSQL; a no-op on TimescaleDB). */
const partitionDaysAhead = 7
const partitionMaintenanceInterval = Duration.hours(6)

/**
 * SQLSTATE classes worth retrying: connection exceptions (08, which is also
 * what PgBouncer reports), insufficient resources (53, "too many
 * connections"), operator intervention (57: shutdown, cancel, statement
 * timeout), system errors (58), and serialization/deadlock/lock timeout.
 * Data errors (22) and constraint violations (23) would fail again.
 */
const retryableSqlState = /^(08|53|57|58|40001|40P01|55P03)/

/** The server's SQLSTATE, when the failure came from PostgreSQL or PgBouncer (not from the socket). */
const sqlStateOf = (cause: SqlError): string | undefined => {
  const inner: unknown = cause.reason.cause
  const code = typeof inner === "object" && inner !== null && "code" in inner ? inner.code : undefined
  return typeof code === "string" && /^[0-9A-Z]{5}$/.test(code) ? code : undefined
}

/** A lost or refused connection, or a transient server condition; never a rejected row. */
export const isRetryable = (cause: unknown): boolean => {
  if (!isSqlError(cause)) return false
  if (cause.reason._tag === "ConnectionError") return true
  const sqlState = sqlStateOf(cause)
  return sqlState === undefined ? cause.reason.isRetryable : retryableSqlState.test(sqlState)
}

/**
 * The pool keeps the failure of a connection attempt made while the database
 * was unreachable and hands it to the next borrower, even once the database is
 * back. Nothing ran on a connection that never opened, so checking out again
 * is safe; each attempt is quick and the whole operation stays bounded.
 */
const isConnectFailure = (cause: unknown): boolean =>
  isSqlError(cause) && cause.reason._tag === "ConnectionError" && cause.reason.operation === "connect"

const retryConnect = { times: 2, while: isConnectFailure }

export const storeError = (operation: string) => (cause: unknown) =>
  new StoreError({ operation, retryable: isRetryable(cause), cause })

/** Bounds a store operation: a hung connection becomes a retryable failure. */
export const boundedBy = (timeout: Duration.Duration) =>
(operation: string) =>
<A>(effect: Effect.Effect<A, StoreError>) =>
  Effect.timeoutOrElse(effect, {
    duration: timeout,
    orElse: () =>
      Effect.fail(
        new StoreError({
          operation,
          retryable: true,
          cause: `no answer within ${Duration.format(timeout)} (database.statementTimeout)`
        })
      )
  })

/** Retries only a connection that never opened (see `isConnectFailure`). */
export const retryConnectFailure = <A, E, R>(effect: Effect.Effect<A, E, R>) => retryAfterFailure<E>(retryConnect)(effect)

/** One `messages` row as the JSON the INSERT expands; dates in epoch seconds. */
const versionRow = ({ message, receivedAt }: MessageCreated | MessageEdited) => {
  const text = encodeText(message.text)
  return {
    channel_id: message.channelId,
    message_id: message.messageId,
    version: messageVersion(message),
    date: message.date,
    edit_date: message.editDate,
    sender_id: message.sender?.id ?? null,
    sender_kind: message.sender?.kind ?? null,
    sender_name: message.sender?.name == null ? null : escapeUnsafe(message.sender.name),
    text: text.text,
    text_escaped: text.escaped,
    entities: escapeUnsafeDeep(message.entities),
    media: escapeUnsafeDeep(message.media),
    reply_to_message_id: message.replyToMessageId,
    grouped_id: message.groupedId,
    views: message.views,
    forwards: message.forwards,
    raw: escapeUnsafeDeep(message.raw ?? null),
    received_at: receivedAt / 1000
  }
}

const deletionRow = (event: MessageDeleted) => ({
  channel_id: event.channelId,
  message_id: event.messageId,
  deleted_at: event.deletedAt / 1000,
  received_at: event.receivedAt / 1000
})

/**
 * A batch's two JSON parameters (null when it has no event of that kind).
 * Only the strings outlive this call: the row objects are garbage before the
 * statement is sent, so they are never promoted while it runs.
 */
const batchJson = (events: ReadonlyArray<MessageEvent>) => {
  const versions: Array<ReturnType<typeof versionRow>> = []
  const deletions: Array<ReturnType<typeof deletionRow>> = []
  for (const event of events) {
    if (event._tag === "MessageDeleted") deletions.push(deletionRow(event))
    else versions.push(versionRow(event))
  }
  return {
    versions: versions.length > 0 ? JSON.stringify(versions) : null,
    deletions: deletions.length > 0 ? JSON.stringify(deletions) : null
  }
}

interface MessageRow {
  readonly channel_id: number
  readonly message_id: number
  readonly version: number
  readonly date: number
  readonly edit_date: number | null
  readonly sender_id: number | null
  readonly sender_kind: string | null
  readonly sender_name: string | null
  readonly text: string
  readonly text_escaped: boolean
  readonly entities: unknown
  readonly media: unknown
  readonly reply_to_message_id: number | null
  readonly grouped_id: string | null
  readonly views: number | null
  readonly forwards: number | null
  readonly raw: unknown
  readonly deleted_at: Date | null
}

const decodeMessage = Schema.decodeUnknownEffect(TelegramMessage)

const storedVersion = (row: MessageRow) =>
  decodeMessage({
    channelId: row.channel_id,
    messageId: row.message_id,
    date: row.date,
    editDate: row.edit_date,
    sender: row.sender_kind === null ? null : { id: row.sender_id, kind: row.sender_kind, name: row.sender_name },
    text: decodeText(row.text, row.text_escaped),
    entities: row.entities,
    media: row.media,
    replyToMessageId: row.reply_to_message_id,
    groupedId: row.grouped_id,
    views: row.views,
    forwards: row.forwards,
    raw: row.raw
  }).pipe(Effect.map((message): StoredVersion => ({ version: row.version, message, deletedAt: row.deleted_at })))

export const make = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const { statementTimeout } = yield* DatabaseConfig

  const bounded = boundedBy(statementTimeout)

  /**
   * The batch is one statement, `write_events` (sql/0047_write_events.up.sql,
   * sql/0057_event_seq_in_xid_order.up.sql): one round trip, in a transaction
   * of its own, that takes the deletions lock, then the transaction id and
   * all the batch's event_seq values with no other batch between.
   */
  const writeBatch = Effect.fn("MessageStore.writeBatch")(
    function*(events: Array.NonEmptyReadonlyArray<MessageEvent>) {
      const { deletions, versions } = batchJson(events)
      const rows = yield* sql<{ inserted: number }>`
        SELECT write_events(${versions}::json, ${deletions}::json) AS inserted`.pipe(
        retryAfterFailure(retryConnect),
        Effect.mapError(storeError("writeBatch")),
        bounded("writeBatch")
      )
      const inserted = rows[0]?.inserted ?? 0
      return { inserted, duplicates: events.length - inserted } satisfies WriteSummary
    }
  )

  const versionsOf = Effect.fn("MessageStore.versions")(
    function*(channelId: ChannelId, messageId: MessageId) {
      const rows = yield* sql<MessageRow>`
        SELECT channel_id::float8 AS channel_id, message_id, version,
          extract(epoch FROM date)::float8 AS date, extract(epoch FROM edit_date)::float8 AS edit_date,
          sender_id::float8 AS sender_id, sender_kind, sender_name, text, text_escaped, entities, media,
          reply_to_message_id, grouped_id, views, forwards, raw, deleted_at
        FROM messages
        WHERE channel_id = ${channelId}::bigint AND message_id = ${messageId}::integer
        ORDER BY version`.pipe(retryAfterFailure(retryConnect), Effect.mapError(storeError("versions")), bounded("versions"))
      return yield* Effect.forEach(rows, (row) =>
        storedVersion(row).pipe(
          Effect.mapError((cause) => new StoreError({ operation: "versions (decode)", retryable: false, cause }))
        ))
    }
  )

  const activeChannels = Effect.fn("MessageStore.activeChannels")(function*(maxAge: Duration.Duration) {
    const rows = yield* sql<{ channel_id: number }>`
      SELECT channel_id::float8 AS channel_id FROM messages
      WHERE received_at > now() - make_interval(secs => ${Duration.toSeconds(maxAge)}::float8)
      UNION
      SELECT channel_id::float8 FROM message_deletions
      WHERE received_at > now() - make_interval(secs => ${Duration.toSeconds(maxAge)}::float8)`.pipe(
      retryConnectFailure,
      Effect.mapError(storeError("activeChannels")),
      bounded("activeChannels")
    )
    return rows.map((row) => row.channel_id as ChannelId)
  })

  const recentEvents = Effect.fn("MessageStore.recentEvents")(
    function*(options: { readonly channelId: ChannelId; readonly maxAge: Duration.Duration; readonly limit: number }) {
      const maxAgeSeconds = Duration.toSeconds(options.maxAge)
      const rows = yield* sql<MessageRow & { readonly received_at: number; readonly deletion: boolean }>`
        WITH k AS (
          SELECT * FROM (
            (SELECT m.channel_id, m.message_id, m.version, m.received_at, false AS deletion, m.event_seq
             FROM messages m
             WHERE m.channel_id = ${options.channelId}::bigint
               AND m.received_at > now() - make_interval(secs => ${maxAgeSeconds}::float8)
             ORDER BY m.event_seq DESC LIMIT ${options.limit}::integer)
            UNION ALL
            (SELECT d.channel_id, d.message_id, NULL::integer, d.received_at, true, d.event_seq
             FROM message_deletions d
             WHERE d.channel_id = ${options.channelId}::bigint
               AND d.received_at > now() - make_interval(secs => ${maxAgeSeconds}::float8)
             ORDER BY d.event_seq DESC LIMIT ${options.limit}::integer)
          ) u ORDER BY event_seq DESC LIMIT ${options.limit}::integer
        )
        SELECT k.channel_id::float8 AS channel_id, k.message_id, k.deletion,
          coalesce(m.version, 0) AS version,
          extract(epoch FROM m.date)::float8 AS date, extract(epoch FROM m.edit_date)::float8 AS edit_date,
          m.sender_id::float8 AS sender_id, m.sender_kind, m.sender_name, coalesce(m.text, '') AS text,
          coalesce(m.text_escaped, false) AS text_escaped, m.entities, m.media, m.reply_to_message_id,
          m.grouped_id, m.views, m.forwards, m.raw, d.deleted_at,
          (extract(epoch FROM k.received_at) * 1000)::float8 AS received_at
        FROM k
        LEFT JOIN messages m ON NOT k.deletion AND m.channel_id = k.channel_id AND m.message_id = k.message_id
          AND m.version = k.version
        LEFT JOIN message_deletions d ON k.deletion AND d.channel_id = k.channel_id AND d.message_id = k.message_id
        ORDER BY k.event_seq`.pipe(retryConnectFailure, Effect.mapError(storeError("recentEvents")), bounded("recentEvents"))
      return yield* Effect.forEach(rows, (row): Effect.Effect<MessageEvent, StoreError> => {
        const receivedAt = Math.round(row.received_at)
        if (row.deletion) {
          return Effect.succeed(
            new MessageDeleted({
              channelId: row.channel_id as ChannelId,
              messageId: row.message_id as MessageId,
              deletedAt: row.deleted_at === null ? receivedAt : row.deleted_at.getTime(),
              receivedAt
            })
          )
        }
        return storedVersion(row).pipe(
          Effect.map(({ message, version }) =>
            version === 0 ? new MessageCreated({ message, receivedAt }) : new MessageEdited({ message, receivedAt })
          ),
          Effect.mapError((cause) => new StoreError({ operation: "recentEvents (decode)", retryable: false, cause }))
        )
      })
    }
  )

  const ping = sql`SELECT 1`.pipe(
    Effect.asVoid,
    retryAfterFailure(retryConnect),
    Effect.mapError(storeError("ping")),
    bounded("ping"),
    Effect.withSpan("MessageStore.ping")
  )

  // Until a day has its partition its rows wait in the default one; keeping
  // partitions ahead is housekeeping, so a failure is logged, counted and
  // tried again, and a success is stamped (an alert sees a loop that stopped).
  // The poll's per-day marks (sql/0056) are folded to a row a day meanwhile.
  const upkeep = (task: string, statement: Effect.Effect<unknown, unknown>, failure: string) =>
    statement.pipe(
      Effect.andThen(Clock.currentTimeMillis),
      Effect.flatMap((now) => Metric.update(Metric.withAttributes(Metrics.storageMaintenanceLastSuccess, { task }), now / 1000)),
      Effect.tapError((error) =>
        Effect.logWarning(`${failure}; retried in ${Duration.format(partitionMaintenanceInterval)}`, error).pipe(
          Effect.andThen(Metric.update(Metric.withAttributes(Metrics.storageMaintenanceFailures, { task }), 1))
        )
      ),
      Effect.ignore
    )
  yield* Effect.all([
    upkeep(
      "partitions",
      sql`SELECT ensure_message_partitions(${partitionDaysAhead}::integer)`,
      "Could not create message partitions ahead"
    ),
    upkeep("poll_marks", sql`SELECT compact_message_seq_days()`, "Could not compact the poll's per-day event marks")
  ], { discard: true }).pipe(
    Effect.repeat(Schedule.spaced(partitionMaintenanceInterval)),
    Effect.forkScoped
  )

  return MessageStore.of({ writeBatch, versions: versionsOf, activeChannels, recentEvents, ping })
})

/** Needs a `SqlClient` (tests give it their own). */
export const layerNoDeps = Layer.effect(MessageStore, make)

/** With the PgBouncer pool of `database.url`. */
export const layer = layerNoDeps.pipe(Layer.provide(PgClient.layer))
