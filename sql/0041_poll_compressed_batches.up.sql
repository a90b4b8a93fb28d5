-- 0041: the API's poll over compressed TimescaleDB chunks reads the
-- batches that hold its page, not every batch of the channel in every chunk.
--
-- api_event_pages (0009, 0021) asked each chunk for its first events after
-- the cursor, ORDER BY event_seq LIMIT n. A compressed chunk (segmentby
-- channel_id, orderby message_id) has no event_seq index and kept no
-- event_seq range per batch, so every chunk decompressed that channel's whole
-- segment, every column, and sorted it to give its first row; without a
-- channel, every batch of every chunk. On TimescaleDB the poll now:
--
-- 1. gives each compressed batch its event_seq range (a minmax sparse index,
--    set by apply_storage_policies below for chunks compressed from now on),
--    so a scan with event_seq bounds skips the batches outside them on
--    metadata alone;
-- 2. finds the page's last event_seq from event_seq alone (a column of 8
--    bytes a row), first within a window of max_rows * 1000 sequence values
--    after the cursor, which leaves the batches that overlap it, and past the
--    window only when it held less than a page and ends before the last value
--    drawn;
-- 3. reads the page's rows as every event in (cursor, last event_seq]: the
--    batch filters leave the one or two batches that hold them.
--
-- The page is the same set of rows as before, read in one statement (one
-- snapshot), and each row's `settled` is computed as in 0021: the no-skip
-- guarantee (the API stops a page at its first unsettled row) is unchanged.
--
-- Both bodies (plain PostgreSQL keeps 0021's statement, which its indexes
-- already serve at about 1 ms) also SET jit = off: the generic plan of the
-- lateral join is estimated at hundreds of thousands of cost units, above
-- jit_above_cost, and PostgreSQL spent seconds compiling it for a query
-- that runs in milliseconds (a poll without a channel on compressed chunks:
-- 10.9 s of its 10.9 s in JIT).

DO $migration$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = 'messages'::regclass) THEN
    EXECUTE $fn$
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
SET jit = off
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
$fn$;
  ELSE
    EXECUTE $fn$
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
SET jit = off
AS $$
#variable_conflict use_column
BEGIN
  IF channels IS NULL THEN
    RETURN QUERY
    WITH horizon AS (
      SELECT pg_snapshot_xmin(pg_current_snapshot()) AS oldest_in_flight,
             now() - make_interval(secs => settle_seconds) AS settled_before,
             (SELECT CASE WHEN s.is_called THEN s.last_value ELSE 0 END FROM event_seq s) AS drawn
    )
    SELECT r.request::integer, (coalesce(e.written_xid < h.oldest_in_flight, true) OR e.written_at < h.settled_before),
           e.event_seq, e.channel_id, e.message_id, e.version, e.date, e.edit_date, e.sender_id, e.sender_kind,
           e.sender_name, e.text, e.text_escaped, e.entities, e.media, e.reply_to_message_id, e.grouped_id,
           e.views, e.forwards, e.raw, e.received_at, e.deleted_at
    FROM (SELECT q.after, q.max_rows, q.request, q.max_rows::bigint * 1000 AS window_seqs
          FROM unnest(afters, max_rows) WITH ORDINALITY AS q(after, max_rows, request)) r
    CROSS JOIN horizon h
    -- 1. The page's last event_seq, from event_seq alone: first within the
    --    window after the cursor, where the batches' event_seq ranges leave
    --    few batches to open...
    CROSS JOIN LATERAL (
      SELECT count(*) AS found, max(k.event_seq) AS last_seq FROM (
        SELECT u.event_seq FROM (
          (SELECT m.event_seq FROM messages m
           WHERE m.event_seq > r.after AND m.event_seq <= r.after + r.window_seqs
           ORDER BY m.event_seq LIMIT r.max_rows)
          UNION ALL
          (SELECT d.event_seq FROM message_deletions d
           WHERE d.event_seq > r.after AND d.event_seq <= r.after + r.window_seqs
           ORDER BY d.event_seq LIMIT r.max_rows)
        ) u
        ORDER BY u.event_seq LIMIT r.max_rows
      ) k
    ) near
    -- ...and past it only when the window held less than a page and ends
    -- before the last event_seq drawn. OFFSET 0 keeps this a value the next
    -- step reads as a parameter, not an expression copied into its scans.
    CROSS JOIN LATERAL (
      SELECT CASE WHEN near.found = r.max_rows OR r.after + r.window_seqs >= h.drawn THEN near.last_seq
                  ELSE (SELECT max(k.event_seq) FROM (
        SELECT u.event_seq FROM (
          (SELECT m.event_seq FROM messages m
           WHERE m.event_seq > r.after
           ORDER BY m.event_seq LIMIT r.max_rows)
          UNION ALL
          (SELECT d.event_seq FROM message_deletions d
           WHERE d.event_seq > r.after
           ORDER BY d.event_seq LIMIT r.max_rows)
        ) u
        ORDER BY u.event_seq LIMIT r.max_rows
      ) k) END AS last_seq
      OFFSET 0
    ) page
    -- 2. The page's rows: every event in (after, last_seq], which the batch
    --    filters narrow to the batches holding them.
    CROSS JOIN LATERAL (
      SELECT m.event_seq, m.channel_id, m.message_id, m.version, m.date, m.edit_date, m.sender_id, m.sender_kind,
             m.sender_name, m.text, m.text_escaped, m.entities, m.media, m.reply_to_message_id,
             m.grouped_id, m.views, m.forwards, m.raw, m.received_at, m.deleted_at,
             m.written_xid, m.ingested_at AS written_at
      FROM messages m
      WHERE m.event_seq > r.after AND m.event_seq <= page.last_seq
      UNION ALL
      SELECT d.event_seq, d.channel_id, d.message_id, NULL::integer, NULL::timestamptz, NULL::timestamptz, NULL::bigint,
             NULL::text, NULL::text, NULL::text, NULL::boolean, NULL::jsonb, NULL::jsonb, NULL::integer,
             NULL::text, NULL::integer, NULL::integer, NULL::jsonb, d.received_at, d.deleted_at,
             d.written_xid, d.received_at
      FROM message_deletions d
      WHERE d.event_seq > r.after AND d.event_seq <= page.last_seq
    ) e
    ORDER BY r.request, e.event_seq;
  ELSE
    RETURN QUERY
    WITH horizon AS (
      SELECT pg_snapshot_xmin(pg_current_snapshot()) AS oldest_in_flight,
             now() - make_interval(secs => settle_seconds) AS settled_before,
             (SELECT CASE WHEN s.is_called THEN s.last_value ELSE 0 END FROM event_seq s) AS drawn
    )
    SELECT r.request::integer, (coalesce(e.written_xid < h.oldest_in_flight, true) OR e.written_at < h.settled_before),
           e.event_seq, e.channel_id, e.message_id, e.version, e.date, e.edit_date, e.sender_id, e.sender_kind,
           e.sender_name, e.text, e.text_escaped, e.entities, e.media, e.reply_to_message_id, e.grouped_id,
           e.views, e.forwards, e.raw, e.received_at, e.deleted_at
    FROM (SELECT q.after, q.channel_id, q.max_rows, q.request, q.max_rows::bigint * 1000 AS window_seqs
          FROM unnest(afters, channels, max_rows) WITH ORDINALITY AS q(after, channel_id, max_rows, request)) r
    CROSS JOIN horizon h
    -- 1. The page's last event_seq, from event_seq alone: first within the
    --    window after the cursor, where the batches' event_seq ranges leave
    --    few batches to open...
    CROSS JOIN LATERAL (
      SELECT count(*) AS found, max(k.event_seq) AS last_seq FROM (
        SELECT u.event_seq FROM (
          (SELECT m.event_seq FROM messages m
           WHERE m.event_seq > r.after AND m.event_seq <= r.after + r.window_seqs
             AND m.channel_id = r.channel_id
           ORDER BY m.event_seq LIMIT r.max_rows)
          UNION ALL
          (SELECT d.event_seq FROM message_deletions d
           WHERE d.event_seq > r.after AND d.event_seq <= r.after + r.window_seqs
             AND d.channel_id = r.channel_id
           ORDER BY d.event_seq LIMIT r.max_rows)
        ) u
        ORDER BY u.event_seq LIMIT r.max_rows
      ) k
    ) near
    -- ...and past it only when the window held less than a page and ends
    -- before the last event_seq drawn. OFFSET 0 keeps this a value the next
    -- step reads as a parameter, not an expression copied into its scans.
    CROSS JOIN LATERAL (
      SELECT CASE WHEN near.found = r.max_rows OR r.after + r.window_seqs >= h.drawn THEN near.last_seq
                  ELSE (SELECT max(k.event_seq) FROM (
        SELECT u.event_seq FROM (
          (SELECT m.event_seq FROM messages m
           WHERE m.event_seq > r.after
             AND m.channel_id = r.channel_id
           ORDER BY m.event_seq LIMIT r.max_rows)
          UNION ALL
          (SELECT d.event_seq FROM message_deletions d
           WHERE d.event_seq > r.after
             AND d.channel_id = r.channel_id
           ORDER BY d.event_seq LIMIT r.max_rows)
        ) u
        ORDER BY u.event_seq LIMIT r.max_rows
      ) k) END AS last_seq
      OFFSET 0
    ) page
    -- 2. The page's rows: every event in (after, last_seq], which the batch
    --    filters narrow to the batches holding them.
    CROSS JOIN LATERAL (
      SELECT m.event_seq, m.channel_id, m.message_id, m.version, m.date, m.edit_date, m.sender_id, m.sender_kind,
             m.sender_name, m.text, m.text_escaped, m.entities, m.media, m.reply_to_message_id,
             m.grouped_id, m.views, m.forwards, m.raw, m.received_at, m.deleted_at,
             m.written_xid, m.ingested_at AS written_at
      FROM messages m
      WHERE m.channel_id = r.channel_id AND m.event_seq > r.after AND m.event_seq <= page.last_seq
      UNION ALL
      SELECT d.event_seq, d.channel_id, d.message_id, NULL::integer, NULL::timestamptz, NULL::timestamptz, NULL::bigint,
             NULL::text, NULL::text, NULL::text, NULL::boolean, NULL::jsonb, NULL::jsonb, NULL::integer,
             NULL::text, NULL::integer, NULL::integer, NULL::jsonb, d.received_at, d.deleted_at,
             d.written_xid, d.received_at
      FROM message_deletions d
      WHERE d.channel_id = r.channel_id AND d.event_seq > r.after AND d.event_seq <= page.last_seq
    ) e
    ORDER BY r.request, e.event_seq;
  END IF;
END
$$;
$fn$;
  END IF;
END
$migration$;

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
          timescaledb.compress_orderby = 'message_id DESC, version DESC',
          timescaledb.sparse_index = 'minmax(event_seq), bloom(sender_id)'
        );
      ELSIF NOT EXISTS (
        SELECT 1 FROM timescaledb_information.hypertable_columnstore_settings s,
                      jsonb_array_elements(s.index) i
        WHERE s.hypertable = 'messages'::regclass AND i->>'type' = 'minmax' AND i->>'column' = 'event_seq'
      ) THEN
        -- Set before 0041: chunks compressed from now on carry each batch's
        -- event_seq range; chunks compressed before keep theirs without it
        -- until recompressed (docs/database.md).
        ALTER TABLE messages SET (timescaledb.sparse_index = 'minmax(event_seq), bloom(sender_id)');
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
