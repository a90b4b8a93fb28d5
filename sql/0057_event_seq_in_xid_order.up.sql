-- 0057: every batch draws its event_seq values in the order of the
-- transaction ids, so the API's poll never passes an event still to come.
--
-- The poll (api_event_pages, src/layers/PgMessageQuery.ts) returns a row only
-- when its writer's transaction id is older than every transaction in flight
-- (the snapshot's xmin). That is safe only if a transaction with a younger id
-- never holds a lower event_seq, and two writers broke it: writer A took its
-- transaction id, writer B took a younger one and drew event_seq 1, A drew 2
-- and committed; while B was in flight the poll returned 2 (A's id is older
-- than B's), and a consumer's cursor passed 1 for good. With two writers at
-- 5,000 msg/s the pipeline bench's API consumer missed events this way.
--
-- draw_event_seqs(n) takes the transaction id and draws n values with no
-- other batch between them: a session advisory lock (transaction locks
-- cannot be released before commit), held only for the draw and released
-- before the function returns, whatever fails. Batches still write and commit
-- side by side. It must come before the transaction's first write, or the
-- transaction id is older than the lock. write_events (0047), the legacy
-- import (src/layers/LegacyImport.ts) and upsert_message_version (0005) give
-- every row a value it drew.
CREATE FUNCTION draw_event_seqs(n integer) RETURNS bigint[]
LANGUAGE plpgsql
AS $$
DECLARE
  seqs bigint[];
BEGIN
  IF n <= 0 THEN
    RETURN ARRAY[]::bigint[];
  END IF;
  BEGIN
    PERFORM pg_advisory_lock(hashtext('telegram-gateway/event-seq'));
    PERFORM pg_current_xact_id();
    SELECT array_agg(nextval('event_seq')) INTO seqs FROM generate_series(1, n);
  EXCEPTION WHEN query_canceled OR others THEN
    -- Under PgBouncer the server connection outlives this client: the lock
    -- must never stay with it.
    PERFORM pg_advisory_unlock(hashtext('telegram-gateway/event-seq'));
    RAISE;
  END;
  PERFORM pg_advisory_unlock(hashtext('telegram-gateway/event-seq'));
  RETURN seqs;
END
$$;
COMMENT ON FUNCTION draw_event_seqs(integer) IS
  'n event_seq values drawn with the transaction id and no other batch between (sql/0057); call before the transaction''s first write';

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

-- 0005's, with its value drawn as a batch's is (one, even when the version is
-- already stored: a gap in event_seq is harmless).
CREATE OR REPLACE FUNCTION upsert_message_version(
  channel bigint,
  message integer,
  message_version integer,
  message_date timestamptz,
  message_text text,
  raw_payload jsonb,
  received timestamptz,
  edited timestamptz DEFAULT NULL,
  sender bigint DEFAULT NULL,
  sender_type text DEFAULT NULL,
  sender_display_name text DEFAULT NULL,
  message_entities jsonb DEFAULT '[]',
  message_media jsonb DEFAULT NULL,
  reply_to integer DEFAULT NULL,
  grouped text DEFAULT NULL,
  view_count integer DEFAULT NULL,
  forward_count integer DEFAULT NULL
) RETURNS boolean
LANGUAGE plpgsql
AS $$
DECLARE
  inserted integer;
BEGIN
  INSERT INTO messages (event_seq, channel_id, message_id, version, date, edit_date, sender_id, sender_kind, sender_name,
                        text, entities, media, reply_to_message_id, grouped_id, views, forwards, raw,
                        received_at, deleted_at)
  VALUES ((draw_event_seqs(1))[1], channel, message, message_version, message_date, edited, sender, sender_type, sender_display_name,
          message_text, message_entities, message_media, reply_to, grouped, view_count, forward_count, raw_payload,
          received,
          (SELECT d.deleted_at FROM message_deletions d WHERE d.channel_id = channel AND d.message_id = message))
  ON CONFLICT (channel_id, message_id, version, date) DO NOTHING;
  GET DIAGNOSTICS inserted = ROW_COUNT;
  IF inserted = 1 THEN
    RETURN true;
  END IF;
  -- (xmax = 0 cannot tell an insert from an update on a partitioned table.)
  UPDATE messages m
  SET views = greatest(m.views, view_count), forwards = greatest(m.forwards, forward_count)
  WHERE m.channel_id = channel AND m.message_id = message AND m.version = message_version AND m.date = message_date
    AND (view_count > m.views OR forward_count > m.forwards
         OR (m.views IS NULL AND view_count IS NOT NULL) OR (m.forwards IS NULL AND forward_count IS NOT NULL));
  RETURN false;
END
$$;
