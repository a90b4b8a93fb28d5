/**
 * The TimescaleDB path on a real TimescaleDB (2.28.3, the side cluster on
 * 5439 that `deploy/scripts/stack.sh timescaledb` builds and starts): the
 * migrations as the non-superuser owner, the API's poll over compressed
 * chunks, retention that the aggregates follow, and the monitoring view.
 * Policies run in the foreground (`CALL run_job`): on this build the
 * background workers end every job as Failed after committing its work
 * (docs/database.md). The tests run on the live clock: the refresh's retry
 * waits real time for the extension's own refresh, which a TestClock never
 * lets it do.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer, Schedule } from "effect"
import * as PgClient from "../../src/layers/PgClient.ts"
import * as PgMessageQuery from "../../src/layers/PgMessageQuery.ts"
import { MessageQuery } from "../../src/services/MessageQuery.ts"
import { configLayer, makeTestDatabase, query, type TestDatabase, timescaleCluster } from "../support/Database.ts"
import { assertJsonMatchesEvents, insertAwkwardEvents } from "../support/EventJson.ts"

const timescaleDatabase = (prefix: string) => makeTestDatabase(prefix, { cluster: timescaleCluster })

/** `count` originals of channel 1 (and their edits) spread over the last `days` days, and one deletion. */
const seed = (database: TestDatabase, days: number) =>
  Effect.gen(function*() {
    yield* query(database, `
      INSERT INTO messages (channel_id, message_id, version, date, edit_date, text, raw, received_at)
      SELECT 1 + m % 2, m, v, now() - make_interval(days => m % ${days}) - interval '1 hour',
             CASE WHEN v > 0 THEN now() END, 'message ' || m, '{}', now()
      FROM generate_series(1, 30) m, generate_series(0, 1) v
      WHERE v = 0 OR m % 5 = 0`)
    yield* query(database, "INSERT INTO message_deletions (channel_id, message_id, deleted_at, received_at) VALUES (1, 3, now(), now())")
  })

const jobs = (database: TestDatabase, proc: string) =>
  query<{ job_id: number }>(database, `SELECT job_id FROM timescaledb_information.jobs WHERE proc_name = '${proc}' ORDER BY job_id`)
    .pipe(Effect.map((rows) => rows.map((row) => row.job_id)))

/** Every message down an error's chain of causes: the driver's text sits a few levels down. */
const causeChain = (error: unknown): string => {
  const messages: Array<string> = []
  for (let cause: unknown = error; cause !== undefined && cause !== null && messages.length < 10;) {
    messages.push(cause instanceof Error ? cause.message : String(cause))
    cause = (cause as { cause?: unknown }).cause
  }
  return messages.join(": ")
}

/**
 * Materializes an aggregate now. The extension's own refresh policy may be
 * running on the new database at the same moment, which TimescaleDB refuses
 * ("due to a concurrent refresh"): wait for it and refresh again.
 */
const refresh = (database: TestDatabase, aggregate: string) =>
  query(database, `CALL refresh_continuous_aggregate('${aggregate}', NULL, NULL)`).pipe(
    Effect.retry({
      while: (error) => causeChain(error).includes("concurrent refresh"),
      schedule: Schedule.spaced("250 millis"),
      times: 40
    })
  )

const runJobs = (database: TestDatabase, proc: string) =>
  Effect.gen(function*() {
    const ids = yield* jobs(database, proc)
    for (const id of ids) yield* query(database, `CALL run_job(${id})`)
    return ids.length
  })

describe("TimescaleDB", () => {
  it.live("migrates as the non-superuser owner: the owner creates the extension and messages is a hypertable", () =>
    Effect.gen(function*() {
      const database = yield* timescaleDatabase("tsdb_migrate")
      const [owner] = yield* query(database, `
        SELECT e.extowner::regrole::text AS owner, r.rolsuper AS superuser
        FROM pg_extension e JOIN pg_roles r ON r.oid = e.extowner WHERE e.extname = 'timescaledb'`)
      assert.deepStrictEqual(owner, { owner: "telegram_gateway", superuser: false })
      const hypertables = yield* query(database, "SELECT hypertable_name FROM timescaledb_information.hypertables")
      assert.deepStrictEqual(hypertables, [{ hypertable_name: "messages" }])
    }))

  it.live("polls compressed chunks, after the compression policy ran, with the same pages as before", () =>
    Effect.gen(function*() {
      const database = yield* timescaleDatabase("tsdb_compressed")
      yield* seed(database, 4)
      const pages = query<{ request: number; event_seq: string; settled: boolean; message_id: number }>(database, `
        SELECT request, event_seq::text, settled, message_id
        FROM api_event_pages(ARRAY[0, 5, 0]::bigint[], NULL, ARRAY[100, 7, 3], 30)
        UNION ALL
        SELECT 10 + request, event_seq::text, settled, message_id
        FROM api_event_pages(ARRAY[0, 10]::bigint[], ARRAY[1, 2]::bigint[], ARRAY[100, 100], 30)
        ORDER BY 1, 2`)
      // A page is settled once no transaction that could still commit an earlier
      // event is open anywhere in the cluster (a background job, another test's
      // database): wait for that, as a consumer's next poll would.
      const settledPages = pages.pipe(
        Effect.repeat({ until: (rows) => rows.every((row) => row.settled), schedule: Schedule.spaced("200 millis"), times: 100 })
      )
      const before = yield* settledPages
      assert.isAbove(before.length, 40)
      assert.isTrue(before.every((row) => row.settled))
      const policies = yield* query(database, "SELECT * FROM apply_storage_policies('1 day', '1 day', NULL)")
      assert.include(JSON.stringify(policies), "compress chunks older than 1 day")
      assert.strictEqual(yield* runJobs(database, "policy_compression"), 1)
      const [compressed] = yield* query<{ n: number }>(database, `
        SELECT count(*)::int AS n FROM timescaledb_information.chunks WHERE hypertable_name = 'messages' AND is_compressed`)
      assert.isAtLeast(compressed?.n ?? 0, 2)
      assert.deepStrictEqual(yield* settledPages, before)
    }))

  it.live("pages over compressed chunks whose batches carry their event_seq range, past the poll's window too", () =>
    Effect.gen(function*() {
      const database = yield* timescaleDatabase("tsdb_poll_window")
      yield* seed(database, 4)
      // Channel 3: one event every 5,000 sequence values, days back, so a page
      // of 3 (window 3,000 values, sql/0041) never fills within its window and
      // the poll reads past it; and a deletion among them.
      yield* query(database, `
        DO $$
        BEGIN
          FOR i IN 1..6 LOOP
            PERFORM setval('event_seq', nextval('event_seq') + 5000);
            INSERT INTO messages (channel_id, message_id, version, date, text, raw, received_at)
            VALUES (3, i, 0, now() - make_interval(days => 2 + i % 2), 'sparse ' || i, '{}', now());
          END LOOP;
          PERFORM setval('event_seq', nextval('event_seq') + 5000);
          INSERT INTO message_deletions (channel_id, message_id, deleted_at, received_at) VALUES (3, 2, now(), now());
        END
        $$`)
      const expected = yield* query<{ seqs: ReadonlyArray<string> }>(database, `
        SELECT array_agg(event_seq::text ORDER BY event_seq) AS seqs FROM (
          SELECT event_seq FROM messages WHERE channel_id = 3
          UNION ALL SELECT event_seq FROM message_deletions WHERE channel_id = 3) e`)
      const all = expected[0]?.seqs ?? []
      assert.strictEqual(all.length, 7)
      // Every cursor of channel 3 (its events and 0), pages of 3, and the same without a channel.
      const pages = Effect.gen(function*() {
        const rows = yield* query<{ request: number; event_seq: string; settled: boolean }>(database, `
          SELECT request, event_seq::text, settled
          FROM api_event_pages(ARRAY[0, ${all.join(", ")}]::bigint[], array_fill(3::bigint, ARRAY[${all.length + 1}]),
                               array_fill(3, ARRAY[${all.length + 1}]), 30)
          ORDER BY request, event_seq::bigint`)
        const whole = yield* query<{ event_seq: string }>(database, `
          SELECT event_seq::text FROM api_event_pages(ARRAY[0]::bigint[], NULL, ARRAY[1000], 30) ORDER BY event_seq::bigint`)
        return { rows, whole: whole.map((row) => row.event_seq) }
      }).pipe(
        Effect.repeat({ until: ({ rows }) => rows.every((row) => row.settled), schedule: Schedule.spaced("200 millis"), times: 100 })
      )
      const before = yield* pages
      for (let request = 1; request <= all.length + 1; request++) {
        assert.deepStrictEqual(
          before.rows.filter((row) => row.request === request).map((row) => row.event_seq),
          all.slice(request - 1, request + 2)
        )
      }
      yield* query(database, "SELECT * FROM apply_storage_policies('1 day', '1 day', NULL)")
      yield* runJobs(database, "policy_compression")
      const chunks = yield* query<{ compressed: boolean; event_seq_range: boolean }>(database, `
        SELECT c.is_compressed AS compressed,
               EXISTS (SELECT 1 FROM timescaledb_information.chunk_columnstore_settings s, jsonb_array_elements(s.index) i
                       WHERE s.chunk = format('%I.%I', c.chunk_schema, c.chunk_name)::regclass
                         AND i->>'type' = 'minmax' AND i->>'column' = 'event_seq') AS event_seq_range
        FROM timescaledb_information.chunks c WHERE c.hypertable_name = 'messages' AND c.is_compressed`)
      assert.isAtLeast(chunks.length, 2)
      assert.isTrue(chunks.every((chunk) => chunk.event_seq_range))
      assert.deepStrictEqual(yield* pages, before)
    }))

  it.live("polls versions written into compressed chunks after the head: both write paths mark their days (sql/0058)", () =>
    Effect.gen(function*() {
      const database = yield* timescaleDatabase("tsdb_compressed_marks")
      yield* seed(database, 4)
      yield* query(database, "SELECT * FROM apply_storage_policies('1 day', '1 day', NULL)")
      yield* runJobs(database, "policy_compression")
      const [head] = yield* query<{ seq: string }>(database, `
        SELECT greatest((SELECT max(event_seq) FROM messages), (SELECT max(event_seq) FROM message_deletions))::text AS seq`)
      const after = head?.seq ?? "0"
      // An edit of message 10 as the writer writes it (write_events), and a
      // message backfilled by hand, each into a day whose chunk is compressed.
      yield* query(database, `
        SELECT write_events(json_build_array(json_build_object(
          'channel_id', channel_id, 'message_id', message_id, 'version', 1767607300,
          'date', extract(epoch FROM date), 'edit_date', 1767607300, 'text', 'edited', 'text_escaped', false,
          'raw', json_build_object('id', message_id), 'received_at', extract(epoch FROM now()))), NULL)
        FROM messages WHERE message_id = 10 AND version = 0`)
      yield* query(database, `
        INSERT INTO messages (channel_id, message_id, version, date, text, raw, received_at)
        SELECT 2, 31, 0, date, 'backfilled', '{}', now() FROM messages WHERE message_id = 15 AND version = 0`)
      const written = yield* query<{ key: string; compressed: boolean; day: string }>(database, `
        SELECT m.channel_id || ':' || m.message_id || ':' || m.version AS key, c.is_compressed AS compressed,
               (m.date AT TIME ZONE 'UTC')::date::text AS day
        FROM messages m
        JOIN timescaledb_information.chunks c
          ON c.hypertable_name = 'messages' AND m.date >= c.range_start AND m.date < c.range_end
        WHERE m.event_seq > ${after} ORDER BY m.event_seq`)
      assert.deepStrictEqual(written.map((row) => [row.key, row.compressed]), [["1:10:1767607300", true], ["2:31:0", true]])
      const polled = yield* query<{ key: string }>(database, `
        SELECT channel_id || ':' || message_id || ':' || version AS key
        FROM api_event_pages(ARRAY[${after}]::bigint[], NULL, ARRAY[100], 0) ORDER BY event_seq`)
      assert.deepStrictEqual(polled.map((row) => row.key), ["1:10:1767607300", "2:31:0"])
      // Each day's mark reaches the version written into it.
      const marks = yield* query<{ day: string; max_seq: string }>(database, `
        SELECT day::text, max(max_seq)::text AS max_seq FROM message_seq_days
        WHERE max_seq > ${after} GROUP BY day ORDER BY max(max_seq)`)
      assert.deepStrictEqual(marks.map((mark) => mark.day), written.map((row) => row.day))
    }))

  it.live("writes the poll's JSON from compressed chunks as the API wrote it from their rows (sql/0055)", () =>
    Effect.gen(function*() {
      const database = yield* timescaleDatabase("tsdb_events_json")
      yield* insertAwkwardEvents(database, 3)
      yield* query(database, "SELECT * FROM apply_storage_policies('1 day', '1 day', NULL)")
      assert.strictEqual(yield* runJobs(database, "policy_compression"), 1)
      // Every message row, the awkward ones included, now sits in a compressed chunk.
      const [uncompressed] = yield* query<{ n: number }>(database, `
        SELECT count(*)::int AS n FROM messages m
        JOIN timescaledb_information.chunks c ON format('%I.%I', c.chunk_schema, c.chunk_name)::regclass = m.tableoid
        WHERE NOT c.is_compressed`)
      assert.strictEqual(uncompressed?.n, 0)
      const context = yield* Layer.build(
        PgMessageQuery.layer.pipe(Layer.provide(PgClient.layer), Layer.provide(configLayer(database)))
      )
      assert.isAbove(yield* assertJsonMatchesEvents(Context.get(context, MessageQuery), 10), 100)
    }).pipe(Effect.scoped))

  it.live("marks versions in compressed chunks processed, decompressing only the batch that holds each", () =>
    Effect.gen(function*() {
      const database = yield* timescaleDatabase("tsdb_marks")
      yield* seed(database, 4)
      // An edit versioned as the store versions them: its edit date in unix seconds (10 digits).
      yield* query(database, `
        INSERT INTO messages (channel_id, message_id, version, date, edit_date, text, raw, received_at)
        SELECT channel_id, message_id, 1767607300, date, to_timestamp(1767607300), 'edited', '{}', now()
        FROM messages WHERE message_id = 10 AND version = 0`)
      yield* query(database, "SELECT * FROM apply_storage_policies('1 day', '1 day', NULL)")
      yield* runJobs(database, "policy_compression")
      // The original and that edit, both in a compressed chunk, and the deletion.
      const [original, edit] = yield* query<{ key: string; compressed: boolean }>(database, `
        SELECT m.channel_id || ':' || m.message_id || ':' || m.version AS key, c.is_compressed AS compressed
        FROM messages m
        JOIN timescaledb_information.chunks c ON format('%I.%I', c.chunk_schema, c.chunk_name)::regclass = m.tableoid
        WHERE m.message_id = 10 AND m.version <> 1 ORDER BY m.version`)
      assert.deepStrictEqual([original?.compressed, edit?.compressed], [true, true])
      assert.match(edit?.key ?? "", /^1:10:[0-9]{10}$/)
      const keys = [original!.key, edit!.key, "1:3:deleted"]
      // Through the API's own statement. Before 0040 the trigger's UPDATE, joined to the marked
      // keys, decompressed every batch of every compressed chunk: the seed's two compressed chunks
      // (days 2 and 3 back) hold 11 rows of channel 1 (message 10's batch) and 8 of channel 2, so
      // 19 rows passed this limit and failed the mark, where the one batch's 11 do not.
      yield* query(database, `ALTER DATABASE ${database.name}` +
        " SET timescaledb.max_tuples_decompressed_per_dml_transaction = 15")
      const context = yield* Layer.build(
        PgMessageQuery.layer.pipe(Layer.provide(PgClient.layer), Layer.provide(configLayer(database)))
      )
      const marks = Context.get(context, MessageQuery)
      assert.deepStrictEqual(yield* marks.markProcessed("billing", keys, 100), { marked: 3, alreadyMarked: 0, unknown: [] })
      const processed = yield* query<{ key: string }>(database, `
        SELECT channel_id || ':' || message_id || ':' || version AS key FROM messages
        WHERE processed_at IS NOT NULL ORDER BY version`)
      assert.deepStrictEqual(processed.map((row) => row.key), [original!.key, edit!.key])
      assert.deepStrictEqual(yield* marks.markProcessed("desk", keys, 100), { marked: 3, alreadyMarked: 0, unknown: [] })
      const [chunks] = yield* query<{ compressed: number }>(database, `
        SELECT count(*)::int AS compressed FROM timescaledb_information.chunks
        WHERE hypertable_name = 'messages' AND is_compressed`)
      assert.isAtLeast(chunks?.compressed ?? 0, 2)
    }))

  it.live("drops expired chunks and both aggregates' expired buckets, so hourly and daily agree", () =>
    Effect.gen(function*() {
      const database = yield* timescaleDatabase("tsdb_retention")
      yield* seed(database, 12)
      yield* refresh(database, "message_counts_hourly")
      yield* refresh(database, "message_counts_daily")
      const totals = query<{ source: string; messages: number }>(database, `
        SELECT 'table' AS source, count(*)::int AS messages FROM messages WHERE version = 0
        UNION ALL SELECT 'hourly', coalesce(sum(messages), 0)::int FROM message_counts_hourly
        UNION ALL SELECT 'daily', coalesce(sum(messages), 0)::int FROM message_counts_daily`)
      assert.deepStrictEqual((yield* totals).map((row) => row.messages), [30, 30, 30])
      yield* query(database, "SELECT * FROM apply_storage_policies('1 day', NULL, '5 days')")
      assert.strictEqual(yield* runJobs(database, "policy_retention"), 3)
      const [kept] = yield* query<{ n: number }>(database, "SELECT count(*)::int AS n FROM messages WHERE version = 0")
      assert.isBelow(kept?.n ?? 30, 30)
      // Both aggregates drop their expired buckets by whole materialization chunks: they agree with
      // each other, and keep at most the counts of one such chunk beyond the table (docs/database.md).
      const [table, hourly, daily] = (yield* totals).map((row) => row.messages)
      assert.strictEqual(hourly, daily)
      assert.isBelow(hourly ?? 30, 30)
      assert.isAtLeast(hourly ?? 0, table ?? 0)
      const [oldest] = yield* query<{ hourly: boolean; daily: boolean }>(database, `
        SELECT (SELECT min(bucket) FROM message_counts_hourly) >= now() - interval '15 days' AS hourly,
               (SELECT min(bucket) FROM message_counts_daily) >= now() - interval '15 days' AS daily`)
      assert.deepStrictEqual(oldest, { hourly: true, daily: true })
    }))

  it.live("monitor_table_sizes names each chunk's hypertable or aggregate and time range", () =>
    Effect.gen(function*() {
      const database = yield* timescaleDatabase("tsdb_monitoring")
      yield* seed(database, 3)
      yield* refresh(database, "message_counts_hourly")
      yield* refresh(database, "message_counts_daily")
      const chunks = yield* query<{ parent_table: string | null; partition_range: string | null }>(database, `
        SELECT parent_table, partition_range FROM monitor_table_sizes
        WHERE schema_name = '_timescaledb_internal' AND table_name LIKE '\\_hyper\\_%'`)
      const parents = new Set(chunks.map((chunk) => chunk.parent_table))
      assert.deepStrictEqual([...parents].sort(), ["message_counts_daily", "message_counts_hourly", "messages"])
      assert.isAtLeast(chunks.filter((chunk) => chunk.parent_table === "messages").length, 3)
      for (const chunk of chunks) {
        assert.match(chunk.partition_range ?? "", /^FROM \('.+'\) TO \('.+'\)$/)
      }
    }))
})
