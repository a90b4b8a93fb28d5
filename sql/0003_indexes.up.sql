-- 0003: the indexes the code's queries need, and the processed mark they use.
-- Indexes on the partitioned table (or hypertable) are created on the parent
-- and propagate to every partition or chunk, present and future.

-- "No consumer has processed this version yet": set by the trigger below when
-- the API records a processed mark (consumer_processed, 0002), so the API's
-- own code stays as it is. NULL until the first mark.
ALTER TABLE messages ADD COLUMN processed_at timestamptz;

-- 1. Covering index for polling one channel in event order:
--    PgMessageQuery.events and messages_after_cursor() with a channel
--    (`WHERE channel_id = $1 AND event_seq > $2 ORDER BY event_seq LIMIT $3`).
--    The included columns answer the settle check and the event key without
--    the heap for rows the LIMIT then discards.
CREATE INDEX messages_channel_event_idx ON messages (channel_id, event_seq)
  INCLUDE (message_id, version, deleted_at);

-- Poll across all channels (`WHERE event_seq > $1 ORDER BY event_seq`), for
-- messages and deletions alike: the API's /events without a channel.
CREATE INDEX messages_event_seq_idx ON messages (event_seq);
CREATE INDEX message_deletions_event_seq_idx ON message_deletions (event_seq);

-- 2. Partial index on versions no consumer has processed yet: the backlog
--    view monitor_unprocessed_backlog (0006) and the oldest-first backlog
--    (`WHERE processed_at IS NULL ORDER BY event_seq LIMIT $1`).
--    It holds only the backlog, so it stays small however old the table is.
CREATE INDEX messages_unprocessed_idx ON messages (event_seq) INCLUDE (channel_id)
  WHERE processed_at IS NULL;

-- 3. Full-text search: PgMessageQuery.search and search_messages() filter on
--    `to_tsvector('simple', text) @@ websearch_to_tsquery('simple', $1)`. An
--    expression index (not a generated column) matches that query as written.
--    'simple' lowercases without stemming or stop words: the channels mix
--    English, Portuguese and Russian, and a language's stemmer would mangle
--    the others (and tickers such as PETR4).
CREATE INDEX messages_text_search_idx ON messages USING gin (to_tsvector('simple', text));

-- 4. Containment on entities and media (`entities @> '[{"type": "url"}]'`,
--    `media @> '{"type": "photo"}'`): messages_with_entity() and operators'
--    ad-hoc queries. jsonb_path_ops: smaller and faster for @>, all we use.
CREATE INDEX messages_entities_idx ON messages USING gin (entities jsonb_path_ops);
CREATE INDEX messages_media_idx ON messages USING gin (media jsonb_path_ops) WHERE media IS NOT NULL;

-- 5. Recent first by date within a channel: PgMessageQuery.counts and
--    channel_statistics() over a window (`channel_id = $1 AND date >= $2 AND
--    date < $3`), and a channel's newest messages by date. The included
--    columns make the counts index-only: otherwise the primary key, which
--    also starts with channel_id, wins with an index-only scan of the whole
--    channel instead of the window.
CREATE INDEX messages_channel_date_idx ON messages (channel_id, date DESC) INCLUDE (version, edit_date);

-- 6. By sender: messages_by_sender() (`WHERE sender_id = $1 ORDER BY date
--    DESC`), e.g. every call one analyst made across channels.
CREATE INDEX messages_sender_idx ON messages (sender_id, date DESC) WHERE sender_id IS NOT NULL;

-- Sets processed_at on the versions just marked, once per statement. Keys
-- whose numbers cannot be a stored message's (too long) are skipped, as are
-- deletion keys.
CREATE FUNCTION record_first_processed() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
  UPDATE messages m SET processed_at = now()
  FROM (
    SELECT split_part(event_key, ':', 1)::bigint AS channel_id,
           split_part(event_key, ':', 2)::integer AS message_id,
           split_part(event_key, ':', 3)::integer AS version
    FROM marked
    WHERE event_key ~ '^[0-9]{1,18}:[0-9]{1,9}:[0-9]{1,9}$'
  ) k
  WHERE m.channel_id = k.channel_id AND m.message_id = k.message_id AND m.version = k.version
    AND m.processed_at IS NULL;
  RETURN NULL;
END
$$;

CREATE TRIGGER consumer_processed_marks_messages
  AFTER INSERT ON consumer_processed
  REFERENCING NEW TABLE AS marked
  FOR EACH STATEMENT EXECUTE FUNCTION record_first_processed();
