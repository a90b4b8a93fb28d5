/**
 * MessageQuery on PostgreSQL (through PgBouncer: single statements, no
 * session state), with the `sql` tag only.
 *
 * Event order and the safe watermark: `event_seq` is drawn when a row is
 * inserted, but transactions commit in any order, so a committed row may sit
 * above a sequence value that an open transaction will still commit. A poller
 * that jumped past it would never see it. So `events` stops at the first row
 * whose writing transaction is not older than the oldest transaction in
 * flight (the xmin of the statement's snapshot): every transaction that could
 * still commit a lower `event_seq` took its transaction id before such a
 * row's did, because each batch takes its id and draws all its values with
 * no other batch between (sql/0057_event_seq_in_xid_order).
 * Each row keeps its writer's 64-bit transaction id as data (`written_xid`,
 * sql/0021_timescaledb_path: no wraparound, and TimescaleDB's compressed
 * chunks keep it where they cannot show xmin). So that one stuck session elsewhere cannot
 * stall every consumer, a row older than `api.eventSettleLimit` (30 s, three
 * times the store's statement timeout) is released anyway. The poll itself is
 * the SQL function `api_event_pages` (sql/0009), for its cached plan; on
 * TimescaleDB it reads a page's rows from the compressed batches that hold
 * them (sql/0041_poll_compressed_batches). The API's poll reads the same rows
 * with each event's JSON written by PostgreSQL (`api_event_pages_json`,
 * sql/0055_api_event_json), so the server builds no objects per event.
 */
import { Deferred, Duration, Effect, Exit, Layer, Option, Queue, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { ChannelId, MessageId, type SenderKind, TelegramMessage } from "../domain/Message.ts"
import { ApiConfig } from "../services/ApiConfig.ts"
import {
  ChannelFreshness,
  Checkpoint,
  CursorBeyondNewest,
  CountBucket,
  type CountBucketSize,
  MarkLimitReached,
  MessageHistory,
  MessageNotFound,
  MessageQuery,
  MessageVersion,
  QueryError,
  QueryTimeout,
  SearchHit,
  type StoredEvent,
  type StoredEventJson,
  type StoredEventKey,
  type TelegramMessageJson
} from "../services/MessageQuery.ts"

/**
 * The columns a `MessageRow` reads, named: never `*`, because a column the
 * driver has no decoder for (`written_xid`, an xid8, sql/0021) would fail the
 * whole row whenever its bytes are not valid UTF-8.
 */
const messageColumns =
  "channel_id, message_id, version, date, edit_date, sender_id, sender_kind, sender_name, text, text_escaped, " +
  "entities, media, reply_to_message_id, grouped_id, views, forwards, raw, received_at, deleted_at"

interface MessageRow {
  readonly channel_id: bigint
  readonly message_id: number
  readonly version: number
  readonly date: Date
  readonly edit_date: Date | null
  readonly sender_id: bigint | null
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
  readonly received_at: Date
  readonly deleted_at: Date | null
}

interface EventRow extends Omit<MessageRow, "version" | "date" | "text" | "text_escaped"> {
  readonly event_seq: bigint
  readonly version: number | null
  readonly date: Date | null
  readonly text: string | null
  readonly text_escaped: boolean | null
  readonly settled: boolean
}

interface EventsOptions {
  readonly after: bigint
  readonly channelId: ChannelId | undefined
  readonly limit: number
}

/** An event row of `api_event_pages_json` (sql/0055): the event's JSON in pieces, its jsonb values between them. */
interface EventJsonRow {
  readonly request: number
  readonly settled: boolean
  readonly event_seq: bigint
  readonly head: string
  readonly entities: unknown
  readonly media: unknown
  /** Null for a deletion, whose `head` holds the whole event. */
  readonly middle: string | null
  readonly raw: unknown
  readonly tail: string | null
}

/** A poll waiting for a statement: for `events` (rows to objects) or for `eventsJson` (the API's poll). */
type PendingPoll =
  | {
    readonly json: false
    readonly options: EventsOptions
    readonly answer: Deferred.Deferred<ReadonlyArray<StoredEvent>, unknown>
  }
  | {
    readonly json: true
    readonly options: EventsOptions
    readonly answer: Deferred.Deferred<ReadonlyArray<StoredEventJson>, unknown>
  }

/**
 * Statements polling at once; each answers every poll waiting when it starts.
 * The rest of the pool (`database.poolSize`, 8 by default) stays free for the
 * other endpoints, marks and checkpoints first.
 */
const pollWorkers = 4
/** Keeps one statement's result to a few hundred rows at the default page size. */
const maxPollsPerStatement = 32

const unixSeconds = (date: Date) => Math.floor(date.getTime() / 1000)

/** The store escapes NUL and lone surrogates as JSON string escapes; this undoes it. */
export const unescapeText = (text: string, escaped: boolean): string => escaped ? JSON.parse(`"${text}"`) as string : text

const decodeMessage = Schema.decodeUnknownEffect(TelegramMessage)

/**
 * The row as TelegramMessage's encoded (JSON) form; `toMessage` decodes it
 * into the class. The casts are sound because the store writes only messages
 * it decoded (PgMessageStore), and PostgreSQL keeps the columns' types.
 * The columns an event row may hold null (a deletion's) come apart, so that
 * the poll passes them narrowed without copying its row.
 */
const messageJson = (
  row: Omit<MessageRow, "version" | "date" | "text" | "text_escaped">,
  date: Date,
  text: string,
  textEscaped: boolean
): TelegramMessageJson => ({
  channelId: Number(row.channel_id),
  messageId: row.message_id,
  date: unixSeconds(date),
  editDate: row.edit_date === null ? null : unixSeconds(row.edit_date),
  sender: row.sender_kind === null
    ? null
    : { id: row.sender_id === null ? null : Number(row.sender_id), kind: row.sender_kind as SenderKind, name: row.sender_name },
  text: unescapeText(text, textEscaped),
  entities: (row.entities ?? []) as TelegramMessageJson["entities"],
  media: row.media as TelegramMessageJson["media"],
  replyToMessageId: row.reply_to_message_id,
  groupedId: row.grouped_id,
  views: row.views,
  forwards: row.forwards,
  raw: row.raw
})

/** Validates the row as it builds the class: for the reads that are not on the polling path. */
const toMessage = (row: MessageRow) => decodeMessage(messageJson(row, row.date, row.text, row.text_escaped))

const iso = (date: Date | null) => date === null ? null : date.toISOString()

const bucketMillis: Record<CountBucketSize, number> = { minute: 60_000, hour: 3_600_000, day: 86_400_000 }

/** A stored row's event key, as `eventKey` (src/domain/Message.ts) gives it: a null version is a deletion. */
const storedKey = (channelId: number, messageId: number, version: number | null): string =>
  `${channelId}:${messageId}:${version === null ? "deleted" : version}`

/**
 * The event's members after `cursor`, as JSON.stringify writes its
 * `StoredEvent`: the database wrote all but the jsonb values, whose own text
 * has spaces after ':' and ','; `entities` is `[]` when absent, as in
 * `messageJson`.
 */
const eventMembers = (row: EventJsonRow): string =>
  row.middle === null || row.tail === null
    ? row.head
    : row.head + (row.entities == null ? "[]" : JSON.stringify(row.entities)) + ',"media":' +
      JSON.stringify(row.media ?? null) + row.middle + JSON.stringify(row.raw ?? null) + row.tail

/** Rows up to the first one a transaction still in flight could precede (see the top of this file). */
export const settledPrefix = <Row extends { readonly settled: boolean }>(rows: ReadonlyArray<Row>): ReadonlyArray<Row> => {
  const firstUnsettled = rows.findIndex((row) => !row.settled)
  return firstUnsettled === -1 ? rows : rows.slice(0, firstUnsettled)
}

export const layer = Layer.effect(
  MessageQuery,
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const config = yield* ApiConfig
    const settleSeconds = Duration.toSeconds(config.eventSettleLimit)

    const failed = (operation: string) => Effect.mapError((cause: unknown) => new QueryError({ operation, cause }))
    // The call site is always this helper, so a captured stack would say nothing, at a cost on every poll.
    const orFail = <A, E, R>(operation: string, effect: Effect.Effect<A, E, R>) =>
      effect.pipe(failed(operation), Effect.withSpan(`MessageQuery.${operation}`, undefined, { captureStackTrace: false }))
    const onChannel = (column: string, channelId: ChannelId | undefined) =>
      channelId === undefined ? sql.literal("") : sql`AND ${sql(column)} = ${channelId}`

    const timeoutMs = Duration.toMillis(config.expensive.statementTimeout)
    /** PostgreSQL's SQLSTATE of a failed statement, when the failure carries one. */
    const sqlState = (cause: unknown): unknown =>
      (cause as { reason?: { cause?: { code?: unknown } } } | undefined)?.reason?.cause?.code
    /**
     * Runs `query` in a transaction whose statement timeout is
     * `api.expensive.statementTimeout` (SET LOCAL: through PgBouncer a session
     * setting would leak to other clients). A statement cancelled by it
     * (57014) is a QueryTimeout.
     */
    const withTimeout = <A, R>(operation: string, query: Effect.Effect<A, unknown, R>) =>
      sql.withTransaction(
        sql`SELECT set_config('statement_timeout', ${String(timeoutMs)}, true)`.pipe(Effect.andThen(query))
      ).pipe(
        Effect.mapError((cause) =>
          sqlState(cause) === "57014" ? new QueryTimeout({ operation, timeoutMs }) : new QueryError({ operation, cause })
        ),
        Effect.withSpan(`MessageQuery.${operation}`, undefined, { captureStackTrace: false })
      )

    const channels = orFail(
      "channels",
      Effect.gen(function*() {
        const rows = yield* sql<{
          channel_id: bigint
          username: string | null
          title: string | null
          kind: string | null
          message_id: number | null
          date: Date | null
          received_at: Date | null
          lag: number | null
        }>`
          SELECT c.channel_id, c.username, c.title, c.kind, l.message_id, l.date, l.received_at,
                 extract(epoch FROM now() - l.received_at)::float8 AS lag
          FROM channels c
          LEFT JOIN LATERAL (
            SELECT m.message_id, m.date, m.received_at FROM messages m
            WHERE m.channel_id = c.channel_id
            ORDER BY m.message_id DESC, m.version DESC LIMIT 1
          ) l ON true
          ORDER BY c.channel_id`
        return yield* Effect.forEach(rows, (row) =>
          Schema.decodeUnknownEffect(ChannelFreshness)({
            channelId: Number(row.channel_id),
            username: row.username,
            title: row.title,
            kind: row.kind,
            lastMessageId: row.message_id,
            lastMessageAt: iso(row.date),
            lastReceivedAt: iso(row.received_at),
            lagSeconds: row.lag
          }))
      })
    )

    const channelExists = (channelId: ChannelId) =>
      orFail(
        "channelExists",
        sql<{ known: boolean }>`
          SELECT EXISTS (SELECT 1 FROM channels WHERE channel_id = ${channelId})
              OR EXISTS (SELECT 1 FROM messages WHERE channel_id = ${channelId})
              OR EXISTS (SELECT 1 FROM message_deletions WHERE channel_id = ${channelId}) AS known`
      ).pipe(Effect.map((rows) => rows[0]?.known === true))

    const toEvent = (row: EventRow): StoredEvent => {
      // Ids the store wrote after decoding them; the brands hold without re-checking.
      const channelId = Number(row.channel_id) as ChannelId
      const messageId = row.message_id as MessageId
      const deletedAt = iso(row.deleted_at)
      const receivedAt = row.received_at.toISOString()
      if (row.version === null || row.date === null || row.text === null) {
        return {
          seq: row.event_seq,
          kind: "deleted",
          key: storedKey(channelId, messageId, null),
          channelId,
          messageId,
          version: null,
          message: null,
          deletedAt,
          receivedAt
        }
      }
      const version = row.version
      return {
        seq: row.event_seq,
        kind: version === 0 ? "new" : "edited",
        key: storedKey(channelId, messageId, version),
        channelId,
        messageId,
        version,
        message: messageJson(row, row.date, row.text, row.text_escaped === true),
        deletedAt,
        receivedAt
      }
    }

    /** One poll's settled events. */
    const settledEvents = (rows: ReadonlyArray<EventRow>) => settledPrefix(rows).map(toEvent)
    const settledEventsJson = (rows: ReadonlyArray<EventJsonRow>) =>
      settledPrefix(rows).map((row): StoredEventJson => ({ seq: row.event_seq, members: eventMembers(row) }))

    /**
     * Every poll waiting for a worker, answered by one call of
     * `api_event_pages` (sql/0009): a PL/pgSQL function keeps its plan per
     * server connection, where a plain statement through PgBouncer (no
     * prepared statements) would be planned again on every poll, at several
     * times the cost of running it. An idle worker takes a poll at once:
     * batching adds no wait, it forms only while statements are in flight.
     */
    const pollsFor = (batch: ReadonlyArray<PendingPoll>, withChannel: boolean, json: boolean) => {
      const afters = batch.map((poll) => String(poll.options.after))
      const channels = withChannel ? batch.map((poll) => poll.options.channelId ?? 0) : null
      const limits = batch.map((poll) => poll.options.limit)
      // One row type for both: a poll reads only the columns of its own function.
      return json
        ? sql<EventRow & EventJsonRow>`
            SELECT * FROM api_event_pages_json(${afters}::bigint[], ${channels}::bigint[], ${limits}::int[], ${settleSeconds}::float8)`
        : sql<EventRow & EventJsonRow>`
            SELECT * FROM api_event_pages(${afters}::bigint[], ${channels}::bigint[], ${limits}::int[], ${settleSeconds}::float8)`
    }

    /** One statement for polls of one kind; each poll is answered with its own settled events. */
    const answerKind = (polls: ReadonlyArray<PendingPoll>, withChannel: boolean, json: boolean) =>
      pollsFor(polls, withChannel, json).pipe(
        Effect.exit,
        Effect.map((exit) => {
          if (Exit.isFailure(exit)) {
            const failed = Exit.failCause(exit.cause)
            for (const poll of polls) {
              if (poll.json) Deferred.doneUnsafe(poll.answer, failed)
              else Deferred.doneUnsafe(poll.answer, failed)
            }
            return
          }
          // The rows come ordered by request (api_event_pages): one pass splits them.
          const byRequest: Array<Array<EventRow & EventJsonRow>> = polls.map(() => [])
          for (const row of exit.value) byRequest[row.request - 1]?.push(row)
          polls.forEach((poll, index) => {
            const rows = byRequest[index]!
            if (poll.json) Deferred.doneUnsafe(poll.answer, Exit.succeed(settledEventsJson(rows)))
            else Deferred.doneUnsafe(poll.answer, Exit.succeed(settledEvents(rows)))
          })
        })
      )

    /**
     * Runs one batch, a statement per kind of poll (with and without a
     * channel; objects or JSON), side by side when the batch holds more than
     * one kind; a batch of one kind, the usual case, runs in the worker's own
     * fiber.
     */
    const answer = (batch: ReadonlyArray<PendingPoll>) => {
      const first = batch[0]!
      const withChannel = first.options.channelId !== undefined
      if (batch.every((poll) => poll.json === first.json && (poll.options.channelId !== undefined) === withChannel)) {
        return answerKind(batch, withChannel, first.json)
      }
      const kinds = new Map<string, { withChannel: boolean; json: boolean; polls: Array<PendingPoll> }>()
      for (const poll of batch) {
        const kind = { withChannel: poll.options.channelId !== undefined, json: poll.json }
        const name = `${kind.withChannel} ${kind.json}`
        let entry = kinds.get(name)
        if (entry === undefined) kinds.set(name, entry = { ...kind, polls: [] })
        entry.polls.push(poll)
      }
      return Effect.forEach(kinds.values(), (kind) => answerKind(kind.polls, kind.withChannel, kind.json), {
        concurrency: "unbounded",
        discard: true
      })
    }

    const pending = yield* Queue.unbounded<PendingPoll>()
    yield* Effect.forkScoped(
      Effect.forever(Effect.flatMap(Queue.takeBetween(pending, 1, maxPollsPerStatement), answer)),
      { startImmediately: true }
    ).pipe(Effect.replicateEffect(pollWorkers))

    // A poll's hand-over to the workers is plain calls (the queue is unbounded,
    // so an offer never waits): on the API's hot path each effect costs.
    const events = (options: EventsOptions) =>
      orFail(
        "events",
        Effect.suspend(() => {
          const answer = Deferred.makeUnsafe<ReadonlyArray<StoredEvent>, unknown>()
          Queue.offerUnsafe(pending, { json: false, options, answer })
          return Deferred.await(answer)
        })
      )

    const eventsJson = (options: EventsOptions) =>
      orFail(
        "eventsJson",
        Effect.suspend(() => {
          const answer = Deferred.makeUnsafe<ReadonlyArray<StoredEventJson>, unknown>()
          Queue.offerUnsafe(pending, { json: true, options, answer })
          return Deferred.await(answer)
        })
      )

    /**
     * The watermark of `api_event_pages` (sql/0021) on the key columns alone,
     * as a plain statement: the relay runs it a few times a second, so its
     * planning costs nothing worth a function.
     */
    const eventKeys = (options: { readonly after: bigint; readonly limit: number }) =>
      orFail(
        "eventKeys",
        sql<{
          event_seq: bigint
          channel_id: bigint
          message_id: number
          version: number | null
          received_at: Date
          settled: boolean
        }>`
          WITH horizon AS (
            SELECT pg_snapshot_xmin(pg_current_snapshot()) AS oldest_in_flight,
                   now() - make_interval(secs => ${settleSeconds}::float8) AS settled_before
          )
          SELECT e.event_seq, e.channel_id, e.message_id, e.version, e.received_at,
                 (coalesce(e.written_xid < h.oldest_in_flight, true) OR e.written_at < h.settled_before) AS settled
          FROM horizon h CROSS JOIN LATERAL (
            SELECT u.* FROM (
              (SELECT m.event_seq, m.channel_id, m.message_id, m.version, m.received_at,
                      m.written_xid, m.ingested_at AS written_at
               FROM messages m WHERE m.event_seq > ${String(options.after)}::bigint
               ORDER BY m.event_seq LIMIT ${options.limit}::integer)
              UNION ALL
              (SELECT d.event_seq, d.channel_id, d.message_id, NULL::integer, d.received_at,
                      d.written_xid, d.received_at
               FROM message_deletions d WHERE d.event_seq > ${String(options.after)}::bigint
               ORDER BY d.event_seq LIMIT ${options.limit}::integer)
            ) u ORDER BY u.event_seq LIMIT ${options.limit}::integer
          ) e
          ORDER BY e.event_seq`
      ).pipe(Effect.map((rows) =>
        settledPrefix(rows).map((row): StoredEventKey => ({
          seq: BigInt(row.event_seq),
          key: storedKey(Number(row.channel_id), row.message_id, row.version),
          receivedAt: row.received_at.toISOString()
        }))
      ))

    const newestSeq = orFail(
      "newestSeq",
      sql<{ seq: bigint | null }>`
        SELECT greatest((SELECT max(event_seq) FROM messages), (SELECT max(event_seq) FROM message_deletions)) AS seq`
    ).pipe(Effect.map((rows) => BigInt(rows[0]?.seq ?? 0)))

    // A sequence's last value is read outside any snapshot: it already counts the
    // values drawn by transactions still in flight.
    const newestDrawnSeq = orFail(
      "newestDrawnSeq",
      sql<{ seq: bigint }>`SELECT CASE WHEN is_called THEN last_value ELSE 0 END AS seq FROM event_seq`
    ).pipe(Effect.map((rows) => BigInt(rows[0]?.seq ?? 0)))

    const history = (channelId: ChannelId, messageId: MessageId) =>
      Effect.gen(function*() {
        const rows = yield* orFail(
          "history",
          sql<MessageRow>`
            SELECT ${sql.unsafe(messageColumns)}
            FROM messages WHERE channel_id = ${channelId} AND message_id = ${messageId} ORDER BY version`
        )
        const last = rows.at(-1)
        if (last === undefined) return yield* new MessageNotFound({ channelId, messageId })
        const versions = yield* orFail(
          "history",
          Effect.forEach(rows, (row) =>
            toMessage(row).pipe(
              Effect.map((message) =>
                new MessageVersion({ version: row.version, message, receivedAt: row.received_at.toISOString() })
              )
            ))
        )
        return new MessageHistory({ channelId, messageId, deletedAt: iso(last.deleted_at), versions })
      })

    const recent = (channelId: ChannelId, limit: number) =>
      orFail(
        "recent",
        Effect.gen(function*() {
          // deleted_at is set on every version, so filtering before DISTINCT ON is exact.
          const rows = yield* sql<MessageRow>`
            SELECT DISTINCT ON (message_id) ${sql.unsafe(messageColumns)} FROM messages
            WHERE channel_id = ${channelId} AND deleted_at IS NULL
            ORDER BY message_id DESC, version DESC
            LIMIT ${limit}`
          return yield* Effect.forEach(rows, toMessage)
        })
      )

    /**
     * Ranks only the newest `api.expensive.searchMatches` matching versions,
     * found newest first (by date: sql/0042's index, or TimescaleDB's chunks
     * newest first), so a word that matches every row reads about as many
     * rows as the bound, not the table; a rare word is read through the text
     * index. A version an edit superseded is then dropped: each candidate's
     * newest version is looked up by its key and date (every version of a
     * message has the message's date: one partition or chunk, not the table).
     */
    const search = (options: { query: string; channelId: ChannelId | undefined; limit: number }) =>
      withTimeout(
        "search",
        Effect.gen(function*() {
          const rows = yield* sql<{
            channel_id: bigint
            message_id: number
            version: number
            date: Date
            text: string
            text_escaped: boolean
            rank: number
          }>`
            WITH h AS MATERIALIZED (
              SELECT m.channel_id, m.message_id, m.version, m.date, m.text, m.text_escaped
              FROM messages m
              WHERE to_tsvector('simple', m.text) @@ websearch_to_tsquery('simple', ${options.query})
                AND m.deleted_at IS NULL ${onChannel("m.channel_id", options.channelId)}
              ORDER BY m.date DESC
              LIMIT ${config.expensive.searchMatches}
            )
            SELECT h.channel_id, h.message_id, h.version, h.date, h.text, h.text_escaped,
                   ts_rank(to_tsvector('simple', h.text), websearch_to_tsquery('simple', ${options.query}))::float8 AS rank
            FROM h
            WHERE h.version = (
              SELECT max(n.version) FROM messages n
              WHERE n.channel_id = h.channel_id AND n.message_id = h.message_id AND n.date = h.date)
            ORDER BY rank DESC, h.date DESC, h.channel_id, h.message_id
            LIMIT ${options.limit}`
          return rows.map((row) =>
            new SearchHit({
              channelId: ChannelId.make(Number(row.channel_id)),
              messageId: MessageId.make(row.message_id),
              version: row.version,
              date: unixSeconds(row.date),
              text: unescapeText(row.text, row.text_escaped),
              rank: row.rank
            })
          )
        })
      )

    const counts = (options: { channelId: ChannelId | undefined; from: Date; to: Date; bucket: CountBucketSize }) =>
      withTimeout(
        "counts",
        Effect.gen(function*() {
          const { bucket, from, to } = options
          const rows = yield* sql<{ kind: "messages" | "edits" | "deletions"; start: Date; n: number }>`
            SELECT 'messages' AS kind, date_trunc(${bucket}, m.date, 'UTC') AS start, count(*)::int AS n
            FROM messages m
            WHERE m.version = 0 AND m.date >= ${from} AND m.date < ${to} ${onChannel("m.channel_id", options.channelId)}
            GROUP BY 2
            UNION ALL
            SELECT 'edits', date_trunc(${bucket}, m.edit_date, 'UTC'), count(*)::int
            FROM messages m
            WHERE m.version > 0 AND m.edit_date >= ${from} AND m.edit_date < ${to} ${onChannel("m.channel_id", options.channelId)}
            GROUP BY 2
            UNION ALL
            SELECT 'deletions', date_trunc(${bucket}, d.deleted_at, 'UTC'), count(*)::int
            FROM message_deletions d
            WHERE d.deleted_at >= ${from} AND d.deleted_at < ${to} ${onChannel("d.channel_id", options.channelId)}
            GROUP BY 2`
          const step = bucketMillis[bucket]
          const buckets = new Map<number, { messages: number; edits: number; deletions: number }>()
          for (let start = Math.floor(from.getTime() / step) * step; start < to.getTime(); start += step) {
            buckets.set(start, { messages: 0, edits: 0, deletions: 0 })
          }
          for (const row of rows) {
            const entry = buckets.get(row.start.getTime())
            if (entry !== undefined) entry[row.kind] += row.n
          }
          return Array.from(buckets, ([start, n]) => new CountBucket({ start: new Date(start).toISOString(), ...n }))
        })
      )

    /**
     * One statement: locks the consumer's mark count (so concurrent requests
     * of one consumer take turns and the limit holds), keeps the keys that
     * name a stored version or deletion, and inserts those not yet marked
     * unless that would pass `limit`. The count is kept by a trigger
     * (sql/0020_consumer_mark_counts).
     */
    const markProcessed = (consumer: string, keys: ReadonlyArray<string>, limit: number) =>
      Effect.gen(function*() {
        const unique = Array.from(new Set(keys))
        if (unique.length === 0) return { marked: 0, alreadyMarked: 0, unknown: [] }
        const rows = yield* orFail(
          "markProcessed",
          sql<{ stored: ReadonlyArray<string>; marked: number; fresh: number; allowed: boolean; marks: number }>`
            WITH quota AS (
              INSERT INTO consumer_mark_counts AS q (consumer, marks) VALUES (${consumer}, 0)
              ON CONFLICT (consumer) DO UPDATE SET marks = q.marks
              RETURNING q.marks
            ),
            requested AS (SELECT DISTINCT key FROM unnest(${unique}::text[]) AS key),
            stored AS (
              SELECT r.key FROM requested r
              CROSS JOIN LATERAL parse_version_key(regexp_replace(r.key, ':deleted$', ':0')) v
              WHERE CASE WHEN r.key LIKE '%:deleted'
                THEN EXISTS (SELECT 1 FROM message_deletions d
                             WHERE d.channel_id = v.channel_id AND d.message_id = v.message_id)
                ELSE EXISTS (SELECT 1 FROM messages m
                             WHERE m.channel_id = v.channel_id AND m.message_id = v.message_id AND m.version = v.version)
              END
            ),
            fresh AS (
              SELECT s.key FROM stored s
              WHERE NOT EXISTS (SELECT 1 FROM consumer_processed p WHERE p.consumer = ${consumer} AND p.event_key = s.key)
            ),
            allowed AS (SELECT (SELECT marks FROM quota) + (SELECT count(*) FROM fresh) <= ${limit} AS ok),
            inserted AS (
              INSERT INTO consumer_processed (consumer, event_key)
              SELECT ${consumer}, key FROM fresh WHERE (SELECT ok FROM allowed)
              ON CONFLICT DO NOTHING
              RETURNING 1
            )
            SELECT (SELECT coalesce(array_agg(key), '{}') FROM stored) AS stored,
                   (SELECT count(*)::int FROM inserted) AS marked,
                   (SELECT count(*)::int FROM fresh) AS fresh,
                   (SELECT ok FROM allowed) AS allowed,
                   (SELECT marks::float8 FROM quota) AS marks`
        )
        const row = rows[0]!
        if (!row.allowed) return yield* new MarkLimitReached({ consumer, marks: row.marks, adding: row.fresh, limit })
        const stored = new Set(row.stored)
        return {
          marked: row.marked,
          alreadyMarked: stored.size - row.marked,
          unknown: unique.filter((key) => !stored.has(key))
        }
      })

    const toCheckpoint = (row: { consumer: string; event_seq: bigint; updated_at: Date }) =>
      new Checkpoint({ consumer: row.consumer, seq: row.event_seq, updatedAt: row.updated_at.toISOString() })

    const checkpoint = (consumer: string) =>
      orFail(
        "checkpoint",
        sql<{ consumer: string; event_seq: bigint; updated_at: Date }>`
          SELECT consumer, event_seq, updated_at FROM consumer_checkpoints WHERE consumer = ${consumer}`
      ).pipe(Effect.map((rows) => Option.map(Option.fromNullishOr(rows[0]), toCheckpoint)))

    /** Stored only when `seq` is at most the last value `event_seq` drew (0 before the first). */
    const setCheckpoint = (consumer: string, seq: bigint) =>
      Effect.gen(function*() {
        const rows = yield* orFail(
          "setCheckpoint",
          sql<{ consumer: string | null; event_seq: bigint | null; updated_at: Date | null; newest: bigint }>`
            WITH newest AS (SELECT CASE WHEN is_called THEN last_value ELSE 0 END AS seq FROM event_seq),
            upserted AS (
              INSERT INTO consumer_checkpoints (consumer, event_seq, updated_at)
              SELECT ${consumer}, ${seq}::bigint, now() FROM newest WHERE ${seq}::bigint <= newest.seq
              ON CONFLICT (consumer) DO UPDATE SET event_seq = EXCLUDED.event_seq, updated_at = EXCLUDED.updated_at
              RETURNING consumer, event_seq, updated_at
            )
            SELECT u.consumer, u.event_seq, u.updated_at, n.seq AS newest FROM newest n LEFT JOIN upserted u ON true`
        )
        const row = rows[0]!
        if (row.consumer === null || row.event_seq === null || row.updated_at === null) {
          return yield* new CursorBeyondNewest({ seq, newest: BigInt(row.newest) })
        }
        return toCheckpoint({ consumer: row.consumer, event_seq: row.event_seq, updated_at: row.updated_at })
      })

    const consumers = orFail(
      "consumers",
      sql<{ consumer: string; event_seq: bigint | null; updated_at: Date | null; processed: number }>`
        SELECT c.consumer, cp.event_seq, cp.updated_at,
               (SELECT count(*)::int FROM consumer_processed p WHERE p.consumer = c.consumer) AS processed
        FROM (SELECT consumer FROM consumer_checkpoints UNION SELECT DISTINCT consumer FROM consumer_processed) c
        LEFT JOIN consumer_checkpoints cp USING (consumer)
        ORDER BY c.consumer`
    ).pipe(Effect.map((rows) =>
      rows.map((row) => ({
        consumer: row.consumer,
        checkpoint: row.event_seq === null || row.updated_at === null
          ? null
          : toCheckpoint({ consumer: row.consumer, event_seq: row.event_seq, updated_at: row.updated_at }),
        processed: row.processed
      }))
    ))

    const ping = orFail("ping", sql`SELECT 1`).pipe(Effect.asVoid)

    return MessageQuery.of({
      channels,
      channelExists,
      events,
      eventsJson,
      eventKeys,
      newestSeq,
      newestDrawnSeq,
      history,
      recent,
      search,
      counts,
      markProcessed,
      checkpoint,
      setCheckpoint,
      consumers,
      ping
    })
  })
)
