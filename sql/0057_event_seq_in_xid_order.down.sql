-- Back to 0047's write_events, which draws event_seq as it inserts.
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
DROP FUNCTION draw_event_seqs(integer);
