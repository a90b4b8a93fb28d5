-- 0021: the TimescaleDB path, as a real TimescaleDB runs it: the poll's
-- watermark without xmin, aggregates whose retention agrees with the
-- table's, and a monitoring view that describes chunks.
--
-- The watermark.
--
-- api_event_pages (0009) told a settled row by age(xmin), but TimescaleDB's
-- transparent decompression supports no system column but tableoid: once a
-- chunk was compressed the poll failed ("transparent decompression only
-- supports tableoid system column"). xmin also changed when a row was
-- updated (views, deletion), holding the row back behind the updater. Now
-- each row keeps the id of the transaction that wrote it, as data, which
-- compression keeps: `written_xid`, set by default from pg_current_xact_id()
-- (64-bit, so comparisons never wrap). The store takes its transaction id
-- before drawing event_seq (src/layers/PgMessageStore.ts), so a row whose
-- writer is older than every transaction in flight (the snapshot's xmin) can
-- have no event still to commit below it: the same no-skip guarantee.
-- Rows written before this migration have NULL: they are settled.
--
-- Same signature and result as 0009: callers (the API, the bus relay) read
-- "events after seq N in commit order, never past one that may still commit
-- below" exactly as before.

ALTER TABLE messages ADD COLUMN written_xid xid8;
ALTER TABLE messages ALTER COLUMN written_xid SET DEFAULT pg_current_xact_id();
ALTER TABLE message_deletions ADD COLUMN written_xid xid8;
ALTER TABLE message_deletions ALTER COLUMN written_xid SET DEFAULT pg_current_xact_id();

CREATE OR REPLACE FUNCTION api_event_pages(
  afters bigint[],
  channels bigint[],
  max_rows integer[],
  settle_seconds double precision
) RETURNS TABLE (
  request integer, settled boolean,
  event_seq bigint, channel_id bigint, message_id integer, version integer, date timestamptz,
  edit_date timestamptz, sender_id bigint, sender_kind text, sender_name text, text text,
  text_escaped boolean, entities jsonb, media jsonb, reply_to_message_id integer, grouped_id text,
  views integer, forwards integer, raw jsonb, received_at timestamptz, deleted_at timestamptz
)
LANGUAGE plpgsql STABLE
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
BEGIN
  IF channels IS NULL THEN
    RETURN QUERY
    WITH horizon AS (
      SELECT pg_snapshot_xmin(pg_current_snapshot()) AS oldest_in_flight,
             now() - make_interval(secs => settle_seconds) AS settled_before
    )
    SELECT r.request::integer, (coalesce(e.written_xid < h.oldest_in_flight, true) OR e.written_at < h.settled_before),
           e.event_seq, e.channel_id, e.message_id, e.version, e.date, e.edit_date, e.sender_id, e.sender_kind,
           e.sender_name, e.text, e.text_escaped, e.entities, e.media, e.reply_to_message_id, e.grouped_id,
           e.views, e.forwards, e.raw, e.received_at, e.deleted_at
    FROM unnest(afters, coalesce(channels, array_fill(NULL::bigint, ARRAY[cardinality(afters)])), max_rows)
           WITH ORDINALITY AS r(after, channel_id, max_rows, request)
    CROSS JOIN horizon h
    CROSS JOIN LATERAL (
      SELECT u.* FROM (
        (SELECT m.event_seq, m.channel_id, m.message_id, m.version, m.date, m.edit_date, m.sender_id, m.sender_kind,
                m.sender_name, m.text, m.text_escaped, m.entities, m.media, m.reply_to_message_id,
                m.grouped_id, m.views, m.forwards, m.raw, m.received_at, m.deleted_at,
                m.written_xid, m.ingested_at AS written_at
         FROM messages m
         WHERE m.event_seq > r.after
         ORDER BY m.event_seq LIMIT r.max_rows)
        UNION ALL
        (SELECT d.event_seq, d.channel_id, d.message_id, NULL::integer, NULL::timestamptz, NULL::timestamptz, NULL::bigint,
                NULL::text, NULL::text, NULL::text, NULL::boolean, NULL::jsonb, NULL::jsonb, NULL::integer,
                NULL::text, NULL::integer, NULL::integer, NULL::jsonb, d.received_at, d.deleted_at,
                d.written_xid, d.received_at
         FROM message_deletions d
         WHERE d.event_seq > r.after
         ORDER BY d.event_seq LIMIT r.max_rows)
      ) u
      ORDER BY u.event_seq
      LIMIT r.max_rows
    ) e
    ORDER BY r.request, e.event_seq;
  ELSE
    RETURN QUERY
    WITH horizon AS (
      SELECT pg_snapshot_xmin(pg_current_snapshot()) AS oldest_in_flight,
             now() - make_interval(secs => settle_seconds) AS settled_before
    )
    SELECT r.request::integer, (coalesce(e.written_xid < h.oldest_in_flight, true) OR e.written_at < h.settled_before),
           e.event_seq, e.channel_id, e.message_id, e.version, e.date, e.edit_date, e.sender_id, e.sender_kind,
           e.sender_name, e.text, e.text_escaped, e.entities, e.media, e.reply_to_message_id, e.grouped_id,
           e.views, e.forwards, e.raw, e.received_at, e.deleted_at
    FROM unnest(afters, coalesce(channels, array_fill(NULL::bigint, ARRAY[cardinality(afters)])), max_rows)
           WITH ORDINALITY AS r(after, channel_id, max_rows, request)
    CROSS JOIN horizon h
    CROSS JOIN LATERAL (
      SELECT u.* FROM (
        (SELECT m.event_seq, m.channel_id, m.message_id, m.version, m.date, m.edit_date, m.sender_id, m.sender_kind,
                m.sender_name, m.text, m.text_escaped, m.entities, m.media, m.reply_to_message_id,
                m.grouped_id, m.views, m.forwards, m.raw, m.received_at, m.deleted_at,
                m.written_xid, m.ingested_at AS written_at
         FROM messages m
         WHERE m.event_seq > r.after AND m.channel_id = r.channel_id
         ORDER BY m.event_seq LIMIT r.max_rows)
        UNION ALL
        (SELECT d.event_seq, d.channel_id, d.message_id, NULL::integer, NULL::timestamptz, NULL::timestamptz, NULL::bigint,
                NULL::text, NULL::text, NULL::text, NULL::boolean, NULL::jsonb, NULL::jsonb, NULL::integer,
                NULL::text, NULL::integer, NULL::integer, NULL::jsonb, d.received_at, d.deleted_at,
                d.written_xid, d.received_at
         FROM message_deletions d
         WHERE d.event_seq > r.after AND d.channel_id = r.channel_id
         ORDER BY d.event_seq LIMIT r.max_rows)
      ) u
      ORDER BY u.event_seq
      LIMIT r.max_rows
    ) e
    ORDER BY r.request, e.event_seq;
  END IF;
END
$$;

-- TimescaleDB's aggregates and retention agree, and the monitoring view
-- describes its chunks.

CREATE OR REPLACE FUNCTION apply_storage_policies(chunk_interval interval, compress_after interval, retention interval)
RETURNS SETOF text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
    -- TimescaleDB only, as its 2.x API documents.
    PERFORM set_chunk_time_interval('messages', chunk_interval);
    RETURN NEXT format('chunk interval %s', chunk_interval);
    PERFORM remove_compression_policy('messages', if_exists => true);
    IF compress_after IS NOT NULL THEN
      -- Settings cannot change once chunks are compressed: set them once.
      IF NOT (SELECT compression_enabled FROM timescaledb_information.hypertables
              WHERE hypertable_name = 'messages') THEN
        ALTER TABLE messages SET (
          timescaledb.compress,
          timescaledb.compress_segmentby = 'channel_id',
          timescaledb.compress_orderby = 'message_id DESC, version DESC'
        );
      END IF;
      PERFORM add_compression_policy('messages', compress_after => compress_after);
      RETURN NEXT format('compress chunks older than %s', compress_after);
    END IF;
    PERFORM remove_retention_policy('messages', if_exists => true);
    PERFORM remove_retention_policy('message_counts_hourly', if_exists => true);
    PERFORM remove_retention_policy('message_counts_daily', if_exists => true);
    IF retention IS NOT NULL THEN
      PERFORM add_retention_policy('messages', drop_after => retention);
      -- The aggregates drop the same buckets (0021): a refresh never reaches
      -- back past its start offset, so without these the hourly aggregate
      -- kept counts of chunks the table and the daily one no longer had.
      PERFORM add_retention_policy('message_counts_hourly', drop_after => retention);
      PERFORM add_retention_policy('message_counts_daily', drop_after => retention);
      RETURN NEXT format('drop chunks and aggregate buckets older than %s', retention);
    END IF;
    RETURN;
  END IF;
  RETURN NEXT 'daily partitions (plain PostgreSQL: chunk interval and compression do not apply)';
  IF retention IS NOT NULL THEN
    RETURN QUERY SELECT * FROM drop_expired_message_partitions(retention);
  END IF;
END
$$;

-- TimescaleDB chunks are not partitions (no relpartbound) and, in 2.x, not
-- found as children through pg_inherits by this view's join: their
-- hypertable and time range come from timescaledb_information.chunks. A
-- continuous aggregate's chunks name the aggregate, not its internal
-- materialized hypertable. Same columns as 0006 (that view stays as is on
-- plain PostgreSQL).
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
    RETURN;
  END IF;
  EXECUTE $view$
    CREATE OR REPLACE VIEW monitor_table_sizes AS
    SELECT n.nspname AS schema_name,
           c.relname AS table_name,
           coalesce(aggregate.view_name, parent.relname, ch.hypertable_name) AS parent_table,
           coalesce(pg_get_expr(c.relpartbound, c.oid),
                    CASE WHEN ch.chunk_name IS NOT NULL
                         THEN format('FROM (%L) TO (%L)', ch.range_start, ch.range_end) END) AS partition_range,
           greatest(c.reltuples, 0)::bigint AS estimated_rows,
           pg_table_size(c.oid) AS table_bytes,
           pg_indexes_size(c.oid) AS index_bytes,
           pg_total_relation_size(c.oid) AS total_bytes,
           pg_size_pretty(pg_total_relation_size(c.oid)) AS total_size,
           coalesce(s.n_tup_ins, 0) AS inserted_since_reset,
           coalesce(s.n_dead_tup, 0) AS dead_rows,
           s.last_autovacuum,
           s.last_autoanalyze
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pg_inherits i ON i.inhrelid = c.oid
    LEFT JOIN pg_class parent ON parent.oid = i.inhparent
    LEFT JOIN timescaledb_information.chunks ch ON ch.chunk_schema = n.nspname AND ch.chunk_name = c.relname
    LEFT JOIN timescaledb_information.continuous_aggregates aggregate
      ON aggregate.materialization_hypertable_schema = ch.hypertable_schema
     AND aggregate.materialization_hypertable_name = ch.hypertable_name
    LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
    WHERE c.relkind IN ('r', 'p', 'm')
      AND (n.nspname = 'public' OR n.nspname = '_timescaledb_internal')
    ORDER BY pg_total_relation_size(c.oid) DESC
  $view$;
END
$$;
