-- Rollback of 0054: search_messages() as 0005 made it, ranking every match.
DROP FUNCTION IF EXISTS search_messages(text, integer, bigint, integer);

-- Ranked full-text search over the latest live version of each message, as
-- the API runs it: websearch syntax ("quoted phrases", -excluded, or), the
-- 'simple' configuration, best rank first then newest. Served by
-- messages_text_search_idx.
CREATE FUNCTION search_messages(search_query text, max_rows integer, channel bigint DEFAULT NULL)
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
  SELECT m.channel_id, m.message_id, m.version, m.date, m.text, ts_rank(to_tsvector('simple', m.text), q) AS rank
  FROM messages m, websearch_to_tsquery('simple', search_query) q
  WHERE to_tsvector('simple', m.text) @@ q
    AND m.deleted_at IS NULL
    AND (channel IS NULL OR m.channel_id = channel)
    AND NOT EXISTS (
      SELECT 1 FROM messages n
      WHERE n.channel_id = m.channel_id AND n.message_id = m.message_id AND n.version > m.version)
  ORDER BY rank DESC, m.date DESC, m.channel_id, m.message_id
  LIMIT max_rows
$$;
