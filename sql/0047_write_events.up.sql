-- 0047: a batch of events written in one round trip.
--
-- The writer sent four statements a batch (BEGIN; the advisory lock with the
-- transaction id; the INSERT; COMMIT), each a round trip through PgBouncer.
-- At a few events a second every event is its own batch, so most of the
-- gateway's CPU per event went to those round trips, and under load each one
-- waits its turn on the database, so the commit's latency was four queueing
-- delays. This function is the same transaction as one statement: a single
-- statement runs in a transaction of its own, and inside the function the
-- order of its steps is fixed.
--
-- The steps are those of src/layers/PgMessageStore.ts before this migration:
-- 1. the deletions lock: shared when the batch holds no deletion, exclusive
--    when it does, so versions and deletions of one message written by two
--    writers at once are ordered;
-- 2. pg_current_xact_id(), which takes the transaction id before any
--    event_seq is drawn, so an API poller's watermark (the oldest transaction
--    in flight) always covers this batch's rows (src/layers/PgMessageQuery.ts);
-- 3. the versions, each marked deleted when its message already is;
-- 4. the deletions, then every stored version of those messages marked.
-- Either argument may be NULL (no events of that kind). Returns the rows
-- inserted; a replayed event conflicts and inserts nothing.
CREATE FUNCTION write_events(versions json, deletions json) RETURNS integer
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
