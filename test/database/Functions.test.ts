/**
 * The SQL helpers, views and roles of migrations 0003-0008 on known data, in
 * a migrated database of their own (plain PostgreSQL).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { makeTestDatabase, query } from "../support/Database.ts"
import { applicationRole, connectAs, ensureRoles } from "./Roles.ts"

const hour = "date_trunc('hour', now())"

/** Channel 1: message 1 with media, edited once; message 2; message 3 deleted before it arrives. Channel 2: message 1. */
const seed = `
  INSERT INTO message_deletions (channel_id, message_id, deleted_at, received_at) VALUES (1, 3, ${hour} + interval '3 min', now());
  SELECT upsert_message_version(1, 1, 0, ${hour}, 'Petrobras PETR4 compra forte', '{"id": 1}', now(),
    sender => 10, sender_type => 'user', message_media => '{"type": "photo"}', view_count => 5);
  SELECT upsert_message_version(1, 1, 1, ${hour}, 'Petrobras PETR4 compra muito forte', '{"id": 1}', now(),
    edited => ${hour} + interval '5 min', sender => 10, sender_type => 'user');
  SELECT upsert_message_version(1, 2, 0, ${hour} + interval '1 min', 'Vale VALE3 venda', '{"id": 2}', now(),
    sender => 11, sender_type => 'user', message_entities => '[{"type": "url", "offset": 0, "length": 4}]');
  SELECT upsert_message_version(1, 3, 0, ${hour} + interval '2 min', 'PETR4 apagada', '{"id": 3}', now(), sender => 10);
  SELECT upsert_message_version(2, 1, 0, ${hour} + interval '2 min', 'PETR4 alvo 40', '{"id": 1}', now(), sender => 12)`

const seeded = Effect.gen(function*() {
  yield* ensureRoles
  const database = yield* makeTestDatabase("functions")
  for (const statement of seed.split(";")) yield* query(database, statement)
  return database
})

describe("SQL functions", () => {
  it.effect("upsert_message_version inserts once, then only raises the counters", () =>
    Effect.gen(function*() {
      const database = yield* seeded
      const [again] = yield* query<{ inserted: boolean }>(
        database,
        `SELECT upsert_message_version(1, 1, 0, ${hour}, 'changed text', '{}', now(), view_count => 9) AS inserted`
      )
      assert.isFalse(again?.inserted)
      const [row] = yield* query<{ text: string; views: number }>(
        database,
        "SELECT text, views FROM messages WHERE channel_id = 1 AND message_id = 1 AND version = 0"
      )
      assert.deepStrictEqual(row, { text: "Petrobras PETR4 compra forte", views: 9 })
      const [born] = yield* query<{ deleted: boolean }>(
        database,
        "SELECT deleted_at IS NOT NULL AS deleted FROM messages WHERE channel_id = 1 AND message_id = 3"
      )
      assert.isTrue(born?.deleted, "a version of an already deleted message is born deleted")
    }))

  it.effect("upsert_channel_state never moves pts backwards and keeps fields not given", () =>
    Effect.gen(function*() {
      const database = yield* seeded
      const pts = (statement: string) =>
        query<{ pts: number }>(database, `SELECT upsert_channel_state(${statement}) AS pts`).pipe(Effect.map((rows) => rows[0]?.pts))
      assert.strictEqual(yield* pts("7, pts => 100, last_message => 50, channel_username => 'desk'"), 100)
      assert.strictEqual(yield* pts("7, pts => 90, last_message => 40"), 100)
      assert.strictEqual(yield* pts("7, pts => 120, channel_title => 'Desk'"), 120)
      const [channel] = yield* query(database, "SELECT username, title, last_pts, last_message_id FROM channels WHERE channel_id = 7")
      assert.deepStrictEqual(channel, { username: "desk", title: "Desk", last_pts: 120, last_message_id: 50 })
    }))

  it.effect("messages_after_cursor returns a consumer's unprocessed events in order, after its checkpoint", () =>
    Effect.gen(function*() {
      const database = yield* seeded
      const keys = (statement: string) =>
        query<{ key: string }>(
          database,
          `SELECT channel_id || ':' || message_id || ':' || version AS key FROM ${statement}`
        ).pipe(Effect.map((rows) => rows.map((row) => row.key)))
      assert.deepStrictEqual(yield* keys("messages_after_cursor('desk', 10)"), ["1:1:0", "1:1:1", "1:2:0", "1:3:0", "2:1:0"])
      assert.deepStrictEqual(yield* keys("messages_after_cursor('desk', 10, channel => 2)"), ["2:1:0"])
      yield* query(database, "INSERT INTO consumer_processed (consumer, event_key) VALUES ('desk', '1:1:1'), ('desk', '1:9:0')")
      assert.deepStrictEqual(yield* keys("messages_after_cursor('desk', 2)"), ["1:1:0", "1:2:0"])
      yield* query(
        database,
        "INSERT INTO consumer_checkpoints (consumer, event_seq) SELECT 'desk', event_seq FROM messages WHERE channel_id = 1 AND message_id = 2"
      )
      assert.deepStrictEqual(yield* keys("messages_after_cursor('desk', 10)"), ["1:3:0", "2:1:0"])
      assert.deepStrictEqual(yield* keys("messages_after_cursor('other', 10)"), ["1:1:0", "1:1:1", "1:2:0", "1:3:0", "2:1:0"])

      // The processed mark also feeds the backlog: only 1:1:1 has been processed by anyone.
      const backlog = yield* query(database, "SELECT channel_id::int, versions::int FROM monitor_unprocessed_backlog")
      assert.deepStrictEqual(backlog, [{ channel_id: 1, versions: 3 }, { channel_id: 2, versions: 1 }])
    }))

  it.effect("a processed mark sets processed_at on the version it names, edits and 19-digit channels included", () =>
    Effect.gen(function*() {
      const database = yield* seeded
      // As the store writes them: an edit is versioned by its edit date in unix seconds.
      const wide = "1000000000000000001"
      yield* query(database, `SELECT upsert_message_version(1, 2, 1767607300, ${hour} + interval '1 min', 'Vale VALE3 venda (editado)',
        '{"id": 2}', now(), edited => to_timestamp(1767607300))`)
      yield* query(database, `SELECT upsert_message_version(${wide}, 4000000, 1767607301, ${hour}, 'wide channel, edited', '{}', now(),
        edited => to_timestamp(1767607301))`)
      yield* query(database, `INSERT INTO consumer_processed (consumer, event_key) VALUES
        ('desk', '1:2:1767607300'), ('desk', '${wide}:4000000:1767607301'), ('desk', '9999999999999999999:1:1'),
        ('desk', '1:4294967295:0'), ('desk', '1:3:deleted')`)
      const processed = yield* query<{ key: string }>(
        database,
        "SELECT channel_id || ':' || message_id || ':' || version AS key FROM messages WHERE processed_at IS NOT NULL ORDER BY 1"
      )
      assert.deepStrictEqual(processed.map((row) => row.key), [`${wide}:4000000:1767607301`, "1:2:1767607300"])
    }))

  it.effect("channel_statistics counts one channel's window", () =>
    Effect.gen(function*() {
      const database = yield* seeded
      const [stats] = yield* query(
        database,
        `SELECT messages::int, edits::int, deletions::int, media::int, senders::int,
                first_message_at = ${hour} AS first_ok, last_message_at = ${hour} + interval '2 min' AS last_ok
         FROM channel_statistics(1, ${hour}, ${hour} + interval '1 hour')`
      )
      assert.deepStrictEqual(stats, { messages: 3, edits: 1, deletions: 1, media: 1, senders: 2, first_ok: true, last_ok: true })
      const [empty] = yield* query(
        database,
        `SELECT messages::int FROM channel_statistics(1, ${hour} - interval '2 hours', ${hour})`
      )
      assert.deepStrictEqual(empty, { messages: 0 })
    }))

  it.effect("search_messages ranks the latest live version of each match", () =>
    Effect.gen(function*() {
      const database = yield* seeded
      const hits = yield* query<{ key: string; text: string }>(
        database,
        "SELECT channel_id || ':' || message_id || ':' || version AS key, text FROM search_messages('petr4 forte', 10)"
      )
      assert.deepStrictEqual(hits, [{ key: "1:1:1", text: "Petrobras PETR4 compra muito forte" }])
      const any = yield* query<{ key: string }>(
        database,
        "SELECT channel_id || ':' || message_id AS key FROM search_messages('PETR4', 10) ORDER BY 1"
      )
      assert.deepStrictEqual(any.map((hit) => hit.key), ["1:1", "2:1"], "the deleted message 1:3 is not found")
      assert.lengthOf(yield* query(database, "SELECT * FROM search_messages('PETR4', 10, channel => 2)"), 1)
    }))

  it.effect("search_messages ranks only the newest max_matches matching versions", () =>
    Effect.gen(function*() {
      const database = yield* seeded
      // 2:1 (two minutes past the hour) is the newest match; 1:1, an hour's first minute, ranks higher but is older.
      const newest = yield* query<{ key: string }>(
        database,
        "SELECT channel_id || ':' || message_id AS key FROM search_messages('petr4 or forte', 10, max_matches => 1)"
      )
      assert.deepStrictEqual(newest.map((hit) => hit.key), ["2:1"])
      const all = yield* query<{ key: string }>(
        database,
        "SELECT channel_id || ':' || message_id AS key FROM search_messages('petr4 or forte', 10)"
      )
      assert.deepStrictEqual(all.map((hit) => hit.key), ["1:1", "2:1"], "by rank: 1:1 matches both words")
    }))

  it.effect("the count views are refreshed on demand with the hourly and daily totals", () =>
    Effect.gen(function*() {
      const database = yield* seeded
      const [first] = yield* query<{ refreshed: boolean }>(database, "SELECT refresh_message_aggregates() AS refreshed")
      assert.isTrue(first?.refreshed)
      for (const view of ["message_counts_hourly", "message_counts_daily"]) {
        const rows = yield* query(
          database,
          `SELECT channel_id::int, messages::int, edits::int, deletions::int, media::int FROM ${view} ORDER BY channel_id`
        )
        assert.deepStrictEqual(rows, [
          { channel_id: 1, messages: 3, edits: 1, deletions: 1, media: 1 },
          { channel_id: 2, messages: 1, edits: 0, deletions: 0, media: 0 }
        ], view)
      }
      yield* query(database, `SELECT upsert_message_version(2, 2, 0, ${hour}, 'mais uma', '{}', now())`)
      yield* query(database, "SELECT refresh_message_aggregates()")
      const [channel2] = yield* query(database, "SELECT messages::int FROM message_counts_hourly WHERE channel_id = 2")
      assert.deepStrictEqual(channel2, { messages: 2 })
    }))

  it.effect("retention drops whole expired partitions and expired rows of the default partition", () =>
    Effect.gen(function*() {
      const database = yield* seeded
      yield* query(database, "CREATE TABLE messages_p20200101 PARTITION OF messages FOR VALUES FROM ('2020-01-01') TO ('2020-01-02')")
      yield* query(database, "SELECT upsert_message_version(1, 100, 0, '2020-01-01 12:00Z', 'old', '{}', now())")
      yield* query(database, "SELECT upsert_message_version(1, 101, 0, '2020-02-01 12:00Z', 'old too', '{}', now())")
      const actions = yield* query<{ action: string }>(
        database,
        "SELECT apply_storage_policies(interval '1 day', NULL, interval '365 days') AS action"
      )
      assert.deepStrictEqual(actions.map((row) => row.action), [
        "daily partitions (plain PostgreSQL: chunk interval and compression do not apply)",
        "dropped messages_p20200101 (older than 365 days)",
        "deleted 1 rows older than 365 days from messages_default"
      ])
      const [left] = yield* query(database, "SELECT count(*)::int AS n FROM messages")
      assert.deepStrictEqual(left, { n: 5 })
    }))
})

describe("monitoring views", () => {
  it.effect("monitor_table_sizes lists the tables and each partition with its size", () =>
    Effect.gen(function*() {
      const database = yield* seeded
      yield* query(database, "ANALYZE messages")
      const rows = yield* query<{ table_name: string; parent_table: string | null; total_bytes: string }>(
        database,
        "SELECT table_name, parent_table, total_bytes::text FROM monitor_table_sizes"
      )
      const names = rows.map((row) => row.table_name)
      for (const table of ["messages", "messages_default", "channels", "message_deletions", "message_counts_hourly"]) {
        assert.include(names, table)
      }
      const partitions = rows.filter((row) => row.parent_table === "messages")
      assert.isAtLeast(partitions.length, 9, "the default partition and today plus 7 days ahead")
      assert.isTrue(partitions.every((row) => Number(row.total_bytes) > 0))
    }))

  it.effect("monitor_index_usage counts the scans of each index", () =>
    Effect.gen(function*() {
      const database = yield* seeded
      const sql = yield* connectAs(database, "telegram_gateway")
      yield* sql`SET enable_seqscan = off`
      yield* sql`SELECT count(*) FROM message_deletions WHERE event_seq > 0`
      yield* sql`SELECT pg_stat_force_next_flush()`
      const [usage] = yield* sql<{ scans: string; unused: boolean }>`
        SELECT scans::text, unused FROM monitor_index_usage WHERE index_name = 'message_deletions_event_seq_idx'`
      assert.isAtLeast(Number(usage?.scans), 1)
      assert.isFalse(usage?.unused)
      const names = (yield* sql<{ name: string }>`SELECT DISTINCT coalesce(parent_index, index_name) AS name FROM monitor_index_usage`)
        .map((row) => row.name)
      for (const index of ["messages_channel_event_idx", "messages_unprocessed_idx", "messages_text_search_idx",
        "messages_entities_idx", "messages_channel_date_idx", "messages_sender_idx"]) {
        assert.include(names, index)
      }
    }))

  it.live("monitor_activity shows a blocked query, what blocks it, and how long it has waited", () =>
    Effect.gen(function*() {
      const database = yield* seeded
      const holder = yield* connectAs(database, "telegram_gateway")
      const waiter = yield* connectAs(database, "telegram_gateway")
      const observer = yield* connectAs(database, "telegram_gateway")
      const [holding] = yield* holder<{ pid: number }>`SELECT pg_backend_pid() AS pid, pg_advisory_lock(4242)`
      const waiting = yield* waiter`SELECT pg_advisory_lock(4242), pg_advisory_unlock(4242)`.pipe(Effect.forkChild)
      yield* Effect.sleep("300 millis")
      const rows = yield* observer<{ blocked_by: Array<number>; waiting_for_locks: Array<string>; query: string; waited: boolean }>`
        SELECT blocked_by, waiting_for_locks, query, query_duration > interval '100 milliseconds' AS waited
        FROM monitor_activity WHERE query LIKE '%pg_advisory_lock(4242), pg_advisory_unlock%'`
      assert.lengthOf(rows, 1)
      assert.deepStrictEqual(rows[0]?.blocked_by, [holding!.pid])
      assert.deepStrictEqual(rows[0]?.waiting_for_locks, ["advisory ExclusiveLock"])
      assert.isTrue(rows[0]?.waited)
      yield* holder`SELECT pg_advisory_unlock(4242)`
      yield* Fiber.join(waiting)
    }))
})

describe("the application role", () => {
  it.effect("reads, writes and calls the helpers, but cannot run DDL", () =>
    Effect.gen(function*() {
      const database = yield* seeded
      const app = yield* connectAs(database, applicationRole)
      const [role] = yield* app<{ role: string }>`SELECT current_user AS role`
      assert.strictEqual(role?.role, applicationRole)
      yield* app`SELECT upsert_message_version(3, 1, 0, now(), 'from the app', '{}', now())`
      yield* app`UPDATE messages SET deleted_at = now() WHERE channel_id = 3`
      yield* app`INSERT INTO consumer_processed (consumer, event_key) VALUES ('app', '3:1:0')`
      yield* app`SELECT ensure_message_partitions(9)`
      yield* app`SELECT refresh_message_aggregates()`
      assert.lengthOf(yield* app`SELECT message_id FROM messages WHERE channel_id = 3 AND processed_at IS NOT NULL`, 1)

      const refused = (statement: string) =>
        app.unsafe(statement).pipe(
          Effect.flip,
          Effect.map((error) => String((error.reason as { cause?: unknown }).cause))
        )
      assert.include(yield* refused("CREATE TABLE intruder (id int)"), "permission denied for schema public")
      assert.include(yield* refused("DROP TABLE channels"), "must be owner of table channels")
      assert.include(yield* refused("ALTER TABLE messages ADD COLUMN intruder int"), "must be owner of table messages")
      assert.include(yield* refused("TRUNCATE message_deletions"), "permission denied for table message_deletions")
      assert.include(yield* refused("CREATE INDEX intruder ON channels (title)"), "must be owner of table channels")
      assert.include(yield* refused("DELETE FROM schema_migrations"), "permission denied for table schema_migrations")
      assert.include(yield* refused("REFRESH MATERIALIZED VIEW message_counts_daily"), "must be owner of materialized view")
    }))
})
