-- 0009: the consumer API's poll (GET /api/v1/messages) as a function, so
-- that its plan is made once per server connection instead of once per call.
--
-- Through PgBouncer in transaction mode the API cannot keep prepared
-- statements, so PostgreSQL would parse and plan the poll on every call, and
-- planning it over the partitions of `messages` costs several times running
-- it (pgbench on 1M rows: 0.9-2.2 ms a poll as a plain statement, 0.4-0.5 ms
-- through this function). PL/pgSQL keeps each statement's plan for the life
-- of the server connection, and force_generic_plan keeps that one plan for
-- every set of arguments.
--
-- One call answers several polls (the API batches the polls waiting at the
-- same moment): request i asks for up to max_rows[i] events after afters[i],
-- of channel channels[i], or of every channel when `channels` is NULL. Rows
-- come back ordered by request, then event_seq, with `settled` telling whether
-- the row's writing transaction is older than every transaction in flight or
-- older than settle_seconds: the API stops each page at its first unsettled
-- row (the watermark, see src/layers/PgMessageQuery.ts).
CREATE FUNCTION api_event_pages(
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
      SELECT age((pg_snapshot_xmin(pg_current_snapshot())::text::bigint % 4294967296)::text::xid) AS xid_age,
             now() - make_interval(secs => settle_seconds) AS settled_before
    )
    SELECT r.request::integer, (e.row_xid_age > h.xid_age OR e.written_at < h.settled_before),
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
                age(m.xmin) AS row_xid_age, m.ingested_at AS written_at
         FROM messages m
         WHERE m.event_seq > r.after
         ORDER BY m.event_seq LIMIT r.max_rows)
        UNION ALL
        (SELECT d.event_seq, d.channel_id, d.message_id, NULL::integer, NULL::timestamptz, NULL::timestamptz, NULL::bigint,
                NULL::text, NULL::text, NULL::text, NULL::boolean, NULL::jsonb, NULL::jsonb, NULL::integer,
                NULL::text, NULL::integer, NULL::integer, NULL::jsonb, d.received_at, d.deleted_at,
                age(d.xmin), d.received_at
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
      SELECT age((pg_snapshot_xmin(pg_current_snapshot())::text::bigint % 4294967296)::text::xid) AS xid_age,
             now() - make_interval(secs => settle_seconds) AS settled_before
    )
    SELECT r.request::integer, (e.row_xid_age > h.xid_age OR e.written_at < h.settled_before),
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
                age(m.xmin) AS row_xid_age, m.ingested_at AS written_at
         FROM messages m
         WHERE m.event_seq > r.after AND m.channel_id = r.channel_id
         ORDER BY m.event_seq LIMIT r.max_rows)
        UNION ALL
        (SELECT d.event_seq, d.channel_id, d.message_id, NULL::integer, NULL::timestamptz, NULL::timestamptz, NULL::bigint,
                NULL::text, NULL::text, NULL::text, NULL::boolean, NULL::jsonb, NULL::jsonb, NULL::integer,
                NULL::text, NULL::integer, NULL::integer, NULL::jsonb, d.received_at, d.deleted_at,
                age(d.xmin), d.received_at
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
