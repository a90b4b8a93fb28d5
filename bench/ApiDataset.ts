/**
 * The API benchmarks' data (bench/api.ts, bench/poll.ts): `messages`
 * messages over `channels` channels (ids 1000 and up), dated evenly over the
 * last `days` days up to now, loaded by one INSERT ... SELECT; on
 * TimescaleDB every chunk older than a day compressed.
 */
import { Effect } from "effect"
import { query, type TestDatabase } from "../test/support/Database.ts"

export const firstChannelId = 1000

export const loadApiDataset = (
  database: TestDatabase,
  options: { readonly messages: number; readonly channels: number; readonly days: number; readonly timescale: boolean }
) =>
  Effect.gen(function*() {
    const { channels, days, messages } = options
    // One day to a partition or chunk as a running gateway leaves them: on
    // plain PostgreSQL a daily partition for each past day, named and bounded
    // as ensure_message_partitions (sql/0001) makes them ahead (it makes none
    // before today), so the poll reads as many partitions as a deployment
    // with that much history does, not one default partition.
    yield* query(database, `
      DO $$
      DECLARE day date;
      BEGIN
        IF EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = 'messages'::regclass) THEN
          FOR offset_days IN 1 .. ${days} LOOP
            day := (now() AT TIME ZONE 'UTC')::date - offset_days;
            EXECUTE format('CREATE TABLE %I PARTITION OF messages FOR VALUES FROM (%L) TO (%L)',
              format('messages_p%s', to_char(day, 'YYYYMMDD')),
              day::timestamp AT TIME ZONE 'UTC', (day + 1)::timestamp AT TIME ZONE 'UTC');
          END LOOP;
        END IF;
      END $$`)
    yield* query(database, `
      INSERT INTO messages (channel_id, message_id, version, date, sender_id, sender_kind, sender_name, text, raw, received_at)
      SELECT ${firstChannelId} + g % ${channels}, g / ${channels} + 1, 0, h.start + g * h.step,
             42, 'channel', 'Signals', 'BUY BTCUSDT @ ' || (60000 + g % 1000) || ' TP 62000 SL 59000',
             jsonb_build_object('_', 'message', 'id', g), h.start + g * h.step
      FROM (SELECT date_trunc('day', now()) - interval '${days} days' AS start,
                   (now() - date_trunc('day', now()) + interval '${days} days') / ${messages} AS step) h,
           generate_series(0, ${messages - 1}) g`)
    yield* query(database, `
      INSERT INTO channels (channel_id, username, kind)
      SELECT ${firstChannelId} + g, 'c' || g, 'channel' FROM generate_series(0, ${channels - 1}) g`)
    // The polling indexes come from migration 0003_indexes (messages (event_seq), (channel_id, event_seq)).
    yield* query(database, "VACUUM ANALYZE")
    if (options.timescale) {
      // Every chunk older than a day compressed, by the policy run in the foreground (docs/database.md).
      yield* query(database, "SELECT * FROM apply_storage_policies('1 day', '1 day', NULL)")
      const [job] = yield* query<{ job_id: number }>(database,
        "SELECT job_id FROM timescaledb_information.jobs WHERE proc_name = 'policy_compression'")
      yield* query(database, `CALL run_job(${job?.job_id})`)
      // The compressed chunks' statistics, as autovacuum leaves them soon
      // after a compression job: without them the planner reads the poll's
      // chunks another way (docs/database.md, what history costs a poll).
      yield* query(database, "ANALYZE")
      const [chunks] = yield* query<{ compressed: number; total: number }>(database, `
        SELECT count(*) FILTER (WHERE is_compressed)::int AS compressed, count(*)::int AS total
        FROM timescaledb_information.chunks WHERE hypertable_name = 'messages'`)
      console.error(`TimescaleDB: ${chunks?.compressed} of ${chunks?.total} chunks compressed`)
    }
  })
