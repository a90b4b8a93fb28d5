/**
 * The API's poll reads only the partitions (on TimescaleDB, the chunks) that
 * can hold events after its cursor (sql/0056, sql/0058): every event after
 * the cursor is still returned, wherever its date puts it, and a poll at the
 * head starts no scan of past days. Against real PostgreSQL, and in CI's
 * second run against the TimescaleDB side cluster.
 */
import { PgClient } from "@effect/sql-pg"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { Reactivity } from "effect/reactivity"
import * as Migrations from "../../src/layers/Migrations.ts"
import { configLayer, makeTestDatabase, query, type TestDatabase } from "../support/Database.ts"

const partitioned = (database: TestDatabase) =>
  query<{ partitioned: boolean }>(
    database,
    "SELECT EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = 'messages'::regclass) AS partitioned"
  ).pipe(Effect.map(([row]) => row?.partitioned === true))

/** A daily partition `days` before today, bounded as ensure_message_partitions (sql/0001) bounds them; plain PostgreSQL only. */
const pastPartition = (database: TestDatabase, days: number) =>
  query(database, `
    DO $$
    DECLARE day date := (now() AT TIME ZONE 'UTC')::date - ${days};
    BEGIN
      EXECUTE format('CREATE TABLE %I PARTITION OF messages FOR VALUES FROM (%L) TO (%L)',
        format('messages_p%s', to_char(day, 'YYYYMMDD')),
        day::timestamp AT TIME ZONE 'UTC', (day + 1)::timestamp AT TIME ZONE 'UTC');
    END $$`)

/**
 * Versions of `channel`'s messages `from`..`to`, dated `daysAgo` days before
 * today (UTC) at message id seconds past midnight, written in one batch as the
 * writer writes them; the order of event_seq within a batch is the database's.
 */
const write = (database: TestDatabase, channel: number, from: number, to: number, daysAgo: number, version = 0) =>
  query(database, `
    SELECT write_events(json_agg(json_build_object(
      'channel_id', ${channel}, 'message_id', m, 'version', ${version},
      'date', extract(epoch FROM date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
        - interval '${daysAgo} days' + make_interval(secs => m)),
      'edit_date', CASE WHEN ${version} > 0 THEN ${version} END,
      'text', 'message ' || m, 'text_escaped', false, 'raw', json_build_object('id', m),
      'received_at', extract(epoch FROM now()))), NULL)
    FROM generate_series(${from}, ${to}) m`)

const lastSeq = (database: TestDatabase) =>
  query<{ seq: string }>(database, "SELECT max(event_seq)::text AS seq FROM messages").pipe(
    Effect.map(([row]) => BigInt(row?.seq ?? "0"))
  )

/** The keys a poll of every channel returns after `after`, with up to `limit` events, in key order. */
const poll = (database: TestDatabase, after: bigint, limit = 1000) =>
  query<{ key: string }>(database, `
    SELECT channel_id || ':' || message_id || ':' || version AS key
    FROM api_event_pages(ARRAY[${after}]::bigint[], NULL, ARRAY[${limit}]::int[], 0)
    ORDER BY channel_id, message_id, version`).pipe(Effect.map((rows) => rows.map((row) => row.key)))

/** The same poll for one channel, as the API's channel polls run it. */
const pollChannel = (database: TestDatabase, channel: number, after: bigint) =>
  query<{ key: string }>(database, `
    SELECT channel_id || ':' || message_id || ':' || version AS key
    FROM api_event_pages(ARRAY[${after}]::bigint[], ARRAY[${channel}]::bigint[], ARRAY[1000]::int[], 0)
    ORDER BY channel_id, message_id, version`).pipe(Effect.map((rows) => rows.map((row) => row.key)))

/**
 * The first day (UTC, YYYY-MM-DD) of each partition of `messages` that one
 * poll scanned, read in the poll's own transaction: on plain PostgreSQL from
 * the daily partition's name, on TimescaleDB from the chunk's range (a
 * compressed chunk is scanned through its compressed table).
 *
 * On TimescaleDB the chunks are left out by its chunk append, which the
 * planner puts under the poll's ordered reads once the table is large (1 M
 * rows over 90 daily chunks, docs/database.md); on the few rows of a test
 * it merges every chunk's index in event_seq order instead, which leaves
 * out nothing. Index scans off make the test's plan the large table's: one
 * sort over the chunk append.
 */
const daysScannedBy = (database: TestDatabase, after: bigint, channel: number | null) =>
  Effect.gen(function*() {
    const hypertable = !(yield* partitioned(database))
    const sql = yield* PgClient.makeClient({ url: database.migrationUrl, prepare: false })
    return yield* sql.withTransaction(Effect.gen(function*() {
      if (hypertable) {
        for (const scan of ["indexscan", "indexonlyscan", "bitmapscan"]) yield* sql.unsafe(`SET LOCAL enable_${scan} = off`)
      }
      yield* sql.unsafe(`SELECT count(*) FROM api_event_pages(ARRAY[${after}]::bigint[],
        ${channel === null ? "NULL" : `ARRAY[${channel}]::bigint[]`}, ARRAY[100]::int[], 0)`)
      const rows = yield* sql.unsafe<{ day: string }>(hypertable
        ? `
        SELECT DISTINCT to_char(c.range_start AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day
        FROM pg_stat_xact_user_tables s
        JOIN _timescaledb_catalog.chunk k ON k.schema_name = s.schemaname AND k.table_name = s.relname
        LEFT JOIN _timescaledb_catalog.chunk uncompressed ON uncompressed.compressed_chunk_id = k.id
        JOIN timescaledb_information.chunks c
          ON c.hypertable_name = 'messages' AND c.chunk_name = coalesce(uncompressed.table_name, k.table_name)
        WHERE s.idx_scan > 0 OR s.seq_scan > 0 ORDER BY 1`
        : `
        SELECT CASE WHEN s.relname ~ '^messages_p[0-9]{8}$'
                    THEN to_char(to_date(substr(s.relname, 11), 'YYYYMMDD'), 'YYYY-MM-DD') ELSE s.relname END AS day
        FROM pg_stat_xact_user_tables s
        JOIN pg_inherits i ON i.inhrelid = s.relid AND i.inhparent = 'messages'::regclass
        WHERE s.idx_scan > 0 OR s.seq_scan > 0 ORDER BY 1`)
      return rows.map((row) => row.day)
    }))
  }).pipe(Effect.scoped, Effect.provide(Reactivity.layer))

/** The UTC day `daysAgo` days before today, as YYYY-MM-DD. */
const dayBefore = (daysAgo: number) => new Date(Date.now() - daysAgo * 86_400_000).toISOString().slice(0, 10)

describe("the poll's partitions (sql/0056)", () => {
  it.effect("returns an edit or a backfilled message written into a past day after the cursor", () =>
    Effect.gen(function*() {
      const database = yield* makeTestDatabase("poll_past_day")
      if (yield* partitioned(database)) {
        yield* pastPartition(database, 10)
        yield* pastPartition(database, 3)
      }
      yield* write(database, 1, 1, 5, 10)
      yield* write(database, 1, 6, 10, 0)
      const head = yield* lastSeq(database)
      assert.deepStrictEqual(yield* poll(database, head), [])

      // An edit of a message ten days old, then a message backfilled three days back.
      yield* write(database, 1, 2, 2, 10, 1_767_600_000)
      yield* write(database, 2, 1, 1, 3)
      assert.deepStrictEqual(yield* poll(database, head), ["1:2:1767600000", "2:1:0"])
      assert.deepStrictEqual(yield* pollChannel(database, 1, head), ["1:2:1767600000"])
      assert.deepStrictEqual(yield* pollChannel(database, 2, head), ["2:1:0"])
      // The page stops at its limit and the next page goes on from its last event.
      assert.deepStrictEqual(yield* poll(database, head, 1), ["1:2:1767600000"])
      assert.deepStrictEqual(yield* poll(database, head + 1n), ["2:1:0"])
      assert.strictEqual((yield* poll(database, 0n)).length, 12)
    }).pipe(Effect.scoped))

  it.effect("a poll scans only the days between its cursor's next events, none at the head", () =>
    Effect.gen(function*() {
      const database = yield* makeTestDatabase("poll_pruned")
      if (yield* partitioned(database)) for (const days of [1, 2, 3]) yield* pastPartition(database, days)
      for (const days of [3, 2, 1, 0]) yield* write(database, 7, days * 10 + 1, days * 10 + 5, days)
      const head = yield* lastSeq(database)
      const past = [1, 2, 3].map(dayBefore)

      // Nothing is after the head: no partition at all is scanned.
      for (const channel of [null, 7]) {
        assert.deepStrictEqual(yield* daysScannedBy(database, head, channel), [], `at the head, channel ${channel}`)
      }
      // Behind today's last message: today's partition alone, no past day and none made ahead.
      const behindToday = yield* daysScannedBy(database, head - 1n, 7)
      assert.deepStrictEqual(behindToday, [dayBefore(0)])
      yield* write(database, 7, 21, 21, 2, 1_767_600_000)
      const behindEdit = yield* daysScannedBy(database, head, 7)
      assert.deepStrictEqual(behindEdit, [dayBefore(2)])
      assert.deepStrictEqual(yield* pollChannel(database, 7, head), ["7:21:1767600000"])
      // From the start, every day with events is read, and only those.
      const fromStart = yield* daysScannedBy(database, 0n, 7)
      assert.deepStrictEqual(fromStart, [...past, dayBefore(0)].sort())
    }).pipe(Effect.scoped))

  it.effect("keeps a mark a day per backend, and compaction keeps each day's highest", () =>
    Effect.gen(function*() {
      const database = yield* makeTestDatabase("poll_marks")
      // `query` opens a connection, so a new backend, per statement.
      yield* write(database, 1, 1, 3, 0)
      yield* write(database, 1, 4, 6, 0)
      yield* write(database, 1, 7, 7, 2)
      const marks = query<{ day: string; max_seq: string }>(database,
        "SELECT day::text, max_seq::text FROM message_seq_days ORDER BY day, max_seq")
      const today = new Date().toISOString().slice(0, 10)
      const twoDaysAgo = new Date(Date.now() - 2 * 86_400_000).toISOString().slice(0, 10)
      assert.deepStrictEqual(yield* marks, [
        { day: twoDaysAgo, max_seq: "7" },
        { day: today, max_seq: "3" },
        { day: today, max_seq: "6" }
      ])
      const [folded] = yield* query<{ folded: number }>(database, "SELECT compact_message_seq_days() AS folded")
      assert.strictEqual(folded?.folded, 1)
      assert.deepStrictEqual(yield* marks, [{ day: twoDaysAgo, max_seq: "7" }, { day: today, max_seq: "6" }])
      // A replayed batch inserts nothing and moves no mark.
      yield* write(database, 1, 1, 3, 0)
      yield* query(database, "SELECT compact_message_seq_days()")
      assert.deepStrictEqual(yield* marks, [{ day: twoDaysAgo, max_seq: "7" }, { day: today, max_seq: "6" }])
      // A row written by any other INSERT (an import, an operator) is marked too.
      const [byHand] = yield* query<{ seq: string }>(database, `
        INSERT INTO messages (channel_id, message_id, version, date, text, raw, received_at)
        VALUES (1, 8, 0, now() - interval '2 days', 'by hand', '{}', now()) RETURNING event_seq::text AS seq`)
      yield* query(database, "SELECT compact_message_seq_days()")
      assert.deepStrictEqual(yield* marks, [{ day: twoDaysAgo, max_seq: byHand?.seq ?? "" }, { day: today, max_seq: "6" }])
      assert.deepStrictEqual(yield* pollChannel(database, 1, 7n), ["1:8:0"])
    }).pipe(Effect.scoped))

  it.effect("a many-row INSERT writes each day's mark once, not once per row", () =>
    Effect.gen(function*() {
      const database = yield* makeTestDatabase("poll_bulk_marks")
      if (yield* partitioned(database)) yield* pastPartition(database, 1)
      const sql = yield* PgClient.makeClient({ url: database.migrationUrl, prepare: false })
      const { rows, writes } = yield* sql.withTransaction(Effect.gen(function*() {
        const [inserted] = yield* sql.unsafe<{ rows: number }>(`
          WITH n AS (
            INSERT INTO messages (channel_id, message_id, version, date, text, raw, received_at)
            SELECT 5, m, 0, now() - make_interval(days => m % 2), 'bulk ' || m, '{}', now()
            FROM generate_series(1, 2000) m RETURNING 1)
          SELECT count(*)::int AS rows FROM n`)
        const [marks] = yield* sql.unsafe<{ writes: number }>(`
          SELECT (n_tup_ins + n_tup_upd)::int AS writes FROM pg_stat_xact_user_tables WHERE relname = 'message_seq_days'`)
        return { rows: inserted?.rows, writes: marks?.writes }
      }))
      assert.strictEqual(rows, 2000)
      assert.strictEqual(writes, 2)
      const head = yield* lastSeq(database)
      assert.strictEqual((yield* pollChannel(database, 5, head - 2000n)).length, 1000)
    }).pipe(Effect.scoped, Effect.provide(Reactivity.layer)))

  it.effect("polls the rows written before the migration from any cursor", () =>
    Effect.gen(function*() {
      const database = yield* makeTestDatabase("poll_before_marks", { migrate: false })
      const inDatabase = Effect.provide(configLayer(database))
      yield* Migrations.migrateTo({ to: 55 }).pipe(inDatabase)
      if (yield* partitioned(database)) yield* pastPartition(database, 5)
      yield* write(database, 3, 1, 4, 5)
      yield* write(database, 3, 5, 8, 0)
      yield* Migrations.migrate.pipe(inDatabase)
      const everything = ["1", "2", "3", "4", "5", "6", "7", "8"].map((id) => `3:${id}:0`)
      assert.deepStrictEqual(yield* poll(database, 0n), everything)
      assert.deepStrictEqual(yield* pollChannel(database, 3, 4n), everything.slice(4))
      // Written after it: marked, and read after the old rows.
      yield* write(database, 3, 9, 9, 5)
      assert.deepStrictEqual(yield* poll(database, 8n), ["3:9:0"])
      assert.deepStrictEqual(yield* poll(database, 4n), [...everything.slice(4), "3:9:0"])
    }).pipe(Effect.scoped))
})
