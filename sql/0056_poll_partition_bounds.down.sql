-- Back to 0041's poll on plain PostgreSQL, which scans every partition.
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
    DROP TRIGGER messages_seq_days ON messages;
    DROP FUNCTION record_message_seq_days();
  END IF;
END
$migration$;

DROP FUNCTION compact_message_seq_days();
DROP TABLE message_seq_days;
