-- 0056: the API's poll on plain PostgreSQL reads only the partitions that
-- can hold events after its cursor.
--
-- `messages` is partitioned by the message's date, and a poll asks for events
-- by event_seq, which says nothing about the date: an edit or a backfilled
-- message lands in the partition of its original day with a new event_seq.
-- So api_event_pages (0009, 0021, 0041) started a scan of every partition on
-- every poll: about 9 µs each (docs/database.md), about 3 ms a poll with a
-- year of daily partitions, even for a consumer at the head.
--
-- message_seq_days keeps, for each UTC day of `date`, the highest event_seq
-- written for that day. The poll reads the earliest and the latest day whose
-- highest event_seq is after its lowest cursor and scans only the partitions
-- between them: a row after the cursor has a day whose mark is after the
-- cursor too, so nothing the poll could return is left out, and the empty
-- partitions made ahead of today are left out too.
--
-- A statement trigger keeps the marks on every INSERT into `messages`, in
-- the same transaction as the rows, whatever writes them (the writer's
-- write_events, the legacy import, an operator's INSERT). Each server
-- backend updates a row of its own (`backend`, its pid): a backend runs one
-- transaction at a time, so two writers never wait for each other's row.
-- compact_message_seq_days(), run with the partition maintenance, keeps only
-- each day's highest row. Rows written before this migration have no marks:
-- marks on days -infinity and infinity with the highest event_seq drawn so
-- far keep every partition in the scan of a poll whose cursor is below it, as
-- before.
--
-- The upper bound is written `m.date < ANY (ARRAY[until])`, which prunes as
-- `m.date < until` does: written plainly, the pair of bounds is estimated as
-- a range holding a fraction of a percent of each partition, and the generic
-- plan reads it through the (channel_id, date, ...) index and a sort instead
-- of the (channel_id, event_seq) index in order.
--
-- A TimescaleDB hypertable cannot have a trigger with a transition table; it
-- keeps 0041's poll, and the table stays empty there.

CREATE TABLE message_seq_days (
  day     date NOT NULL,
  backend integer NOT NULL,
  max_seq bigint NOT NULL,
  PRIMARY KEY (day, backend)
);
COMMENT ON TABLE message_seq_days IS
  'Highest event_seq written per UTC day of messages.date, per server backend; the API poll''s partition bound (sql/0056)';

-- Only each day's highest mark bounds a poll; the others are folded away.
-- The advisory lock keeps two gateways from compacting at once; the strict
-- order on (max_seq, backend) keeps every day's highest row.
CREATE FUNCTION compact_message_seq_days() RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
  folded integer;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('compact_message_seq_days'));
  DELETE FROM message_seq_days a USING message_seq_days b
  WHERE a.day = b.day AND (a.max_seq, a.backend) < (b.max_seq, b.backend);
  GET DIAGNOSTICS folded = ROW_COUNT;
  RETURN folded;
END
$$;

DO $migration$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = 'messages'::regclass) THEN
    RETURN;
  END IF;

  -- Not SECURITY DEFINER: the writing role has DML on the table (0008's
  -- default privileges), and a function SET clause would cost every batch.
  CREATE FUNCTION record_message_seq_days() RETURNS trigger
  LANGUAGE plpgsql
  AS $$
  BEGIN
    INSERT INTO message_seq_days AS s (day, backend, max_seq)
    SELECT (n.date AT TIME ZONE 'UTC')::date, pg_backend_pid(), max(n.event_seq)
    FROM new_rows n
    GROUP BY 1
    ON CONFLICT (day, backend) DO UPDATE SET max_seq = greatest(s.max_seq, excluded.max_seq);
    RETURN NULL;
  END
  $$;

  -- Its lock waits for every INSERT in flight, so the sequence read after it
  -- covers every row written without a mark.
  CREATE TRIGGER messages_seq_days AFTER INSERT ON messages
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION record_message_seq_days();
  INSERT INTO message_seq_days (day, backend, max_seq)
  SELECT d.day, 0, s.last_value FROM event_seq s, (VALUES (date '-infinity'), (date 'infinity')) d(day)
  WHERE s.is_called;

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
DECLARE
  since timestamptz;
  until timestamptz;
BEGIN
  -- The first and the last day holding an event after the lowest cursor
  -- (NULL when no day does): plpgsql variables are parameters of the
  -- statement's generic plan, so PostgreSQL removes the partitions outside
  -- them at executor start. This statement and the next share the calling
  -- query's snapshot (the function is STABLE), so a mark and its rows are
  -- seen together.
  SELECT min(s.day)::timestamp AT TIME ZONE 'UTC', (max(s.day) + 1)::timestamp AT TIME ZONE 'UTC'
    INTO since, until
  FROM message_seq_days s
  WHERE s.max_seq > (SELECT min(a) FROM unnest(afters) a);
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
         WHERE m.event_seq > r.after AND m.date >= since AND m.date < ANY (ARRAY[until])
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
         WHERE m.event_seq > r.after AND m.channel_id = r.channel_id AND m.date >= since AND m.date < ANY (ARRAY[until])
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
END
$migration$;
