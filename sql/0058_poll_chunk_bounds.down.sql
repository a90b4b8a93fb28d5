-- Back to 0057's write_events and 0041's poll on TimescaleDB, which opens
-- every chunk; the marks go (the table stays empty there, as under 0056).
DO $migration$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = 'messages'::regclass) THEN
    RETURN;
  END IF;
  DROP TRIGGER messages_seq_day ON messages;
  DROP FUNCTION record_message_seq_day();
  DELETE FROM message_seq_days;
  EXECUTE $fn$
CREATE OR REPLACE FUNCTION write_events(versions json, deletions json) RETURNS integer
LANGUAGE plpgsql
AS $$
#variable_conflict use_column
DECLARE
  versions_inserted integer := 0;
  deletions_inserted integer := 0;
  version_count integer := coalesce(json_array_length(versions), 0);
  seqs bigint[];
BEGIN
  IF deletions IS NULL THEN
    PERFORM pg_advisory_xact_lock_shared(hashtext('telegram-gateway/message-deletions'));
  ELSE
    PERFORM pg_advisory_xact_lock(hashtext('telegram-gateway/message-deletions'));
  END IF;
  seqs := draw_event_seqs(version_count + coalesce(json_array_length(deletions), 0));
  IF versions IS NOT NULL THEN
    INSERT INTO messages (event_seq, channel_id, message_id, version, date, edit_date, sender_id, sender_kind,
      sender_name, text, text_escaped, entities, media, reply_to_message_id, grouped_id, views,
      forwards, raw, received_at, deleted_at)
    SELECT seqs[i.ord], i.channel_id, i.message_id, i.version, to_timestamp(i.date), to_timestamp(i.edit_date),
      i.sender_id, i.sender_kind, i.sender_name, i.text, i.text_escaped, coalesce(i.entities, '[]'),
      i.media, i.reply_to_message_id, i.grouped_id, i.views, i.forwards, coalesce(i.raw, 'null'),
      to_timestamp(i.received_at), d.deleted_at
    FROM ROWS FROM (json_to_recordset(versions) AS (
        channel_id bigint, message_id integer, version integer, date double precision,
        edit_date double precision, sender_id bigint, sender_kind text, sender_name text,
        text text, text_escaped boolean, entities jsonb, media jsonb, reply_to_message_id integer,
        grouped_id text, views integer, forwards integer, raw jsonb, received_at double precision))
      WITH ORDINALITY AS i(channel_id, message_id, version, date, edit_date, sender_id, sender_kind, sender_name,
        text, text_escaped, entities, media, reply_to_message_id, grouped_id, views, forwards, raw, received_at, ord)
      LEFT JOIN message_deletions d USING (channel_id, message_id)
    ON CONFLICT DO NOTHING;
    GET DIAGNOSTICS versions_inserted = ROW_COUNT;
  END IF;
  IF deletions IS NOT NULL THEN
    INSERT INTO message_deletions (event_seq, channel_id, message_id, deleted_at, received_at)
    SELECT seqs[version_count + r.ord], r.channel_id, r.message_id, to_timestamp(r.deleted_at), to_timestamp(r.received_at)
    FROM ROWS FROM (json_to_recordset(deletions)
      AS (channel_id bigint, message_id integer, deleted_at double precision, received_at double precision))
      WITH ORDINALITY AS r(channel_id, message_id, deleted_at, received_at, ord)
    ON CONFLICT DO NOTHING;
    GET DIAGNOSTICS deletions_inserted = ROW_COUNT;
    UPDATE messages m SET deleted_at = d.deleted_at
    FROM message_deletions d
    WHERE (d.channel_id, d.message_id) IN (
        SELECT r.channel_id, r.message_id
        FROM json_to_recordset(deletions) AS r(channel_id bigint, message_id integer))
      AND m.channel_id = d.channel_id AND m.message_id = d.message_id AND m.deleted_at IS NULL;
  END IF;
  RETURN versions_inserted + deletions_inserted;
END
$$;
$fn$;
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
END
$migration$;
