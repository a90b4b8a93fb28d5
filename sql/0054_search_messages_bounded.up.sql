-- 0054: search_messages() ranks only its newest matches, as the API's search
-- does (PgMessageQuery.search, sql/0042).
--
-- No code path of the gateway calls it (the API runs its own query); it is
-- the helper for SQL consoles and bench/database.ts. Before, it ranked every
-- match: a word in most rows ranked the table. Now it takes the newest
-- `max_matches` matching versions (messages_date_idx, 0042, or
-- messages_channel_date_idx with a channel; a rare word still through
-- messages_text_search_idx, 0003), drops those an edit superseded, and ranks
-- the rest. The new argument changes the signature: the old function goes.
DROP FUNCTION search_messages(text, integer, bigint);

CREATE FUNCTION search_messages(
  search_query text,
  max_rows integer,
  channel bigint DEFAULT NULL,
  max_matches integer DEFAULT 1000
)
RETURNS TABLE (
  channel_id bigint,
  message_id integer,
  version integer,
  date timestamptz,
  text text,
  rank real
)
LANGUAGE sql STABLE
AS $$
  WITH h AS MATERIALIZED (
    SELECT m.channel_id, m.message_id, m.version, m.date, m.text
    FROM messages m
    WHERE to_tsvector('simple', m.text) @@ websearch_to_tsquery('simple', search_query)
      AND m.deleted_at IS NULL
      AND (channel IS NULL OR m.channel_id = channel)
    ORDER BY m.date DESC
    LIMIT max_matches
  )
  SELECT h.channel_id, h.message_id, h.version, h.date, h.text,
         ts_rank(to_tsvector('simple', h.text), websearch_to_tsquery('simple', search_query)) AS rank
  FROM h
  WHERE h.version = (
    SELECT max(n.version) FROM messages n
    WHERE n.channel_id = h.channel_id AND n.message_id = h.message_id AND n.date = h.date)
  ORDER BY rank DESC, h.date DESC, h.channel_id, h.message_id
  LIMIT max_rows
$$;
