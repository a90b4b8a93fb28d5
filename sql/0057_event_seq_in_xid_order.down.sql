-- Back to 0047's write_events and 0005's upsert_message_version, which draw
-- event_seq as they insert.
CREATE OR REPLACE FUNCTION write_events(versions json, deletions json) RETURNS integer
LANGUAGE plpgsql
AS $$
#variable_conflict use_column
DECLARE
  versions_inserted integer := 0;
  deletions_inserted integer := 0;
BEGIN
  IF deletions IS NULL THEN
    PERFORM pg_advisory_xact_lock_shared(hashtext('telegram-gateway/message-deletions'));
  ELSE
    PERFORM pg_advisory_xact_lock(hashtext('telegram-gateway/message-deletions'));
  END IF;
  PERFORM pg_current_xact_id();

  IF versions IS NOT NULL THEN
    INSERT INTO messages (channel_id, message_id, version, date, edit_date, sender_id, sender_kind,
      sender_name, text, text_escaped, entities, media, reply_to_message_id, grouped_id, views,
      forwards, raw, received_at, deleted_at)
    SELECT i.channel_id, i.message_id, i.version, to_timestamp(i.date), to_timestamp(i.edit_date),
      i.sender_id, i.sender_kind, i.sender_name, i.text, i.text_escaped, coalesce(i.entities, '[]'),
      i.media, i.reply_to_message_id, i.grouped_id, i.views, i.forwards, coalesce(i.raw, 'null'),
      to_timestamp(i.received_at), d.deleted_at
    FROM json_to_recordset(versions) AS i(
        channel_id bigint, message_id integer, version integer, date double precision,
        edit_date double precision, sender_id bigint, sender_kind text, sender_name text,
        text text, text_escaped boolean, entities jsonb, media jsonb, reply_to_message_id integer,
        grouped_id text, views integer, forwards integer, raw jsonb, received_at double precision)
      LEFT JOIN message_deletions d USING (channel_id, message_id)
    ON CONFLICT DO NOTHING;
    GET DIAGNOSTICS versions_inserted = ROW_COUNT;
  END IF;

  IF deletions IS NOT NULL THEN
    INSERT INTO message_deletions (channel_id, message_id, deleted_at, received_at)
    SELECT r.channel_id, r.message_id, to_timestamp(r.deleted_at), to_timestamp(r.received_at)
    FROM json_to_recordset(deletions)
      AS r(channel_id bigint, message_id integer, deleted_at double precision, received_at double precision)
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
  INSERT INTO messages (channel_id, message_id, version, date, edit_date, sender_id, sender_kind, sender_name,
                        text, entities, media, reply_to_message_id, grouped_id, views, forwards, raw,
                        received_at, deleted_at)
  VALUES (channel, message, message_version, message_date, edited, sender, sender_type, sender_display_name,
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
DROP FUNCTION draw_event_seqs(integer);
