/**
 * Each query the code runs uses the index made for it, on a million generated
 * rows (ANALYZEd), on plain PostgreSQL. Plans name the partitions' own
 * indexes; each is mapped back to the index it was created from on messages.
 */
import { PgClient } from "@effect/sql-pg"
import { assert, describe, layer } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
import { Reactivity } from "effect/reactivity"
import { makeTestDatabase, query, type TestDatabase } from "../support/Database.ts"
import { generateMessages } from "./Generate.ts"

class Million extends Context.Service<Million, TestDatabase>()("test/database/Million") {
  static readonly layer = Layer.effect(
    Million,
    Effect.gen(function*() {
      const database = yield* makeTestDatabase("query_plans")
      yield* query(database, generateMessages(1, 1_000_000))
      yield* query(database, "INSERT INTO message_deletions (channel_id, message_id, deleted_at, received_at) SELECT (g % 100) + 1, g, now(), now() FROM generate_series(1, 20000) g")
      yield* query(database, "VACUUM ANALYZE messages")
      yield* query(database, "VACUUM ANALYZE message_deletions")
      return database
    })
  )
}

/** The indexes of messages (and message_deletions) a plan uses, by the parent index's name. */
const indexesUsed = (database: TestDatabase, statement: string) =>
  Effect.gen(function*() {
    const plan = (yield* query<{ "QUERY PLAN": string }>(database, `EXPLAIN ${statement}`))
      .map((row) => row["QUERY PLAN"]).join("\n")
    const named = [...plan.matchAll(/(?:Index Scan|Index Only Scan|Bitmap Index Scan)(?: Backward)? (?:using|on) (\S+)/g)]
      .map((match) => match[1]!)
    const parents = yield* query<{ name: string; parent: string }>(
      database,
      `SELECT c.relname AS name, coalesce(p.relname, c.relname) AS parent
       FROM pg_class c LEFT JOIN pg_inherits i ON i.inhrelid = c.oid LEFT JOIN pg_class p ON p.oid = i.inhparent
       WHERE c.relkind = 'i'`
    )
    const parentOf = new Map(parents.map((row) => [row.name, row.parent]))
    return { plan, used: new Set(named.map((name) => parentOf.get(name) ?? name)) }
  })

const cursor = 990_000
/** PgMessageQuery.search's statement: the newest 1,000 matches, ranked, superseded versions left out. */
const newestMatches = (word: string) => `
  WITH h AS MATERIALIZED (
    SELECT m.channel_id, m.message_id, m.version, m.date, m.text FROM messages m
    WHERE to_tsvector('simple', m.text) @@ websearch_to_tsquery('simple', '${word}') AND m.deleted_at IS NULL
    ORDER BY m.date DESC LIMIT 1000)
  SELECT h.channel_id, h.message_id, ts_rank(to_tsvector('simple', h.text), websearch_to_tsquery('simple', '${word}')) AS rank
  FROM h
  WHERE h.version = (SELECT max(n.version) FROM messages n
                     WHERE n.channel_id = h.channel_id AND n.message_id = h.message_id AND n.date = h.date)
  ORDER BY rank DESC, h.date DESC, h.channel_id, h.message_id LIMIT 50`
const codeQueries: ReadonlyArray<readonly [string, string, string]> = [
  [
    "polling one channel after a cursor (PgMessageQuery.events, messages_after_cursor)",
    "messages_channel_event_idx",
    `SELECT m.* FROM messages m WHERE m.event_seq > ${cursor} AND m.channel_id = 42 ORDER BY m.event_seq LIMIT 100`
  ],
  [
    "polling every channel after a cursor (PgMessageQuery.events without a channel)",
    "messages_event_seq_idx",
    `SELECT m.* FROM messages m WHERE m.event_seq > ${cursor} ORDER BY m.event_seq LIMIT 100`
  ],
  [
    "deletions after a cursor (PgMessageQuery.events)",
    "message_deletions_event_seq_idx",
    `SELECT d.* FROM message_deletions d WHERE d.event_seq > 19000 ORDER BY d.event_seq LIMIT 100`
  ],
  [
    "the unprocessed backlog, oldest first",
    "messages_unprocessed_idx",
    "SELECT event_seq, channel_id FROM messages WHERE processed_at IS NULL ORDER BY event_seq LIMIT 100"
  ],
  [
    "a rare word's newest matches (PgMessageQuery.search)",
    "messages_text_search_idx",
    newestMatches("ticker4242")
  ],
  [
    "a word in every row, its newest matches first (PgMessageQuery.search)",
    "messages_date_idx",
    newestMatches("compra")
  ],
  [
    "messages with a URL entity",
    "messages_entities_idx",
    `SELECT channel_id, message_id FROM messages WHERE entities @> '[{"type": "url"}]' LIMIT 50`
  ],
  [
    "messages with a photo",
    "messages_media_idx",
    `SELECT channel_id, message_id FROM messages WHERE media @> '{"type": "photo"}' LIMIT 50`
  ],
  [
    "one channel's counts over a window (PgMessageQuery.counts, channel_statistics)",
    "messages_channel_date_idx",
    `SELECT date_trunc('minute', m.date), count(*) FROM messages m
     WHERE m.version = 0 AND m.date >= date_trunc('day', now()) + interval '1 day'
       AND m.date < date_trunc('day', now()) + interval '1 day 2 hours' AND m.channel_id = 42
     GROUP BY 1`
  ],
  [
    "a sender's messages, newest first",
    "messages_sender_idx",
    "SELECT channel_id, message_id, date FROM messages WHERE sender_id = 4242 ORDER BY date DESC LIMIT 50"
  ],
  // The helpers are SQL functions PostgreSQL inlines, so their plans show too.
  [
    "messages_after_cursor() for one channel",
    "messages_channel_event_idx",
    `SELECT * FROM messages_after_cursor('desk', 100, channel => 42, after => ${cursor})`
  ],
  ["search_messages()", "messages_text_search_idx", "SELECT * FROM search_messages('ticker4242', 50)"],
  [
    "channel_statistics()",
    "messages_channel_date_idx",
    "SELECT * FROM channel_statistics(42, date_trunc('day', now()), date_trunc('day', now()) + interval '2 hours')"
  ]
]

/**
 * Rows of messages' partitions that `statement` read, from the statistics of
 * its own transaction: the API's poll is a PL/pgSQL function, whose plan
 * EXPLAIN does not show.
 */
const rowsRead = (database: TestDatabase, statement: string) =>
  Effect.gen(function*() {
    const sql = yield* PgClient.makeClient({ url: database.migrationUrl, prepare: false })
    return yield* sql.withTransaction(Effect.gen(function*() {
      yield* sql.unsafe(statement)
      const [row] = yield* sql.unsafe<{ rows: number }>(`
        SELECT coalesce(sum(s.idx_tup_fetch + s.seq_tup_read), 0)::int AS rows FROM pg_stat_xact_user_tables s
        JOIN pg_inherits i ON i.inhrelid = s.relid AND i.inhparent = 'messages'::regclass`)
      return row?.rows ?? -1
    }))
  }).pipe(Effect.scoped, Effect.provide(Reactivity.layer))

describe("query plans on a million rows", () => {
  layer(Million.layer, { timeout: "300 seconds" })((it) => {
    for (const [name, index, statement] of codeQueries) {
      it.effect(`${name} uses ${index}`, () =>
        Effect.gen(function*() {
          const database = yield* Million
          const { plan, used } = yield* indexesUsed(database, statement)
          assert.isTrue(used.has(index), `expected ${index} in:\n${plan}`)
        }))
    }

    // A plan that took the poll's date bounds (sql/0056) for a narrow range
    // would read the channel's every row in them through messages_channel_date_idx
    // and sort: 10,000 here, not about a page.
    it.effect("the API's poll (api_event_pages) reads about a page, in event_seq order", () =>
      Effect.gen(function*() {
        const database = yield* Million
        const forChannel = yield* rowsRead(database,
          `SELECT count(*) FROM api_event_pages(ARRAY[${cursor}]::bigint[], ARRAY[42]::bigint[], ARRAY[100]::int[], 0)`)
        assert.isAtLeast(forChannel, 100)
        assert.isAtMost(forChannel, 150)
        const everyChannel = yield* rowsRead(database,
          `SELECT count(*) FROM api_event_pages(ARRAY[${cursor}]::bigint[], NULL, ARRAY[100]::int[], 0)`)
        assert.isAtLeast(everyChannel, 100)
        assert.isAtMost(everyChannel, 150)
      }))
  })
})
