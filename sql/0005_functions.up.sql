-- 0005: SQL helpers. Three for reading fast, two UPSERTs for writing safely.

-- A consumer's next events after its cursor: the versions above `after` (by
-- default the consumer's checkpoint) it has not marked processed, in event
-- order, optionally for one channel. Served by messages_channel_event_idx
-- with a channel and messages_event_seq_idx without.
CREATE FUNCTION messages_after_cursor(
  consumer_name text,
  max_rows integer,
  channel bigint DEFAULT NULL,
  after bigint DEFAULT NULL
) RETURNS SETOF messages
LANGUAGE sql STABLE
AS $$
  SELECT m.*
  FROM messages m
  WHERE m.event_seq > coalesce(after, (SELECT c.event_seq FROM consumer_checkpoints c WHERE c.consumer = consumer_name), 0)
    AND (channel IS NULL OR m.channel_id = channel)
    AND NOT EXISTS (
      SELECT 1 FROM consumer_processed p
      WHERE p.consumer = consumer_name
        AND p.event_key = m.channel_id || ':' || m.message_id || ':' || m.version)
  ORDER BY m.event_seq
  LIMIT max_rows
$$;

-- One channel's activity over [window_start, window_end): originals, edits
-- (by edit date), deletions (by deletion date), media, distinct senders, and
-- the first and last message dates. Served by messages_channel_date_idx.
CREATE FUNCTION channel_statistics(channel bigint, window_start timestamptz, window_end timestamptz)
RETURNS TABLE (
  channel_id bigint,
  messages bigint,
  edits bigint,
  deletions bigint,
  media bigint,
  senders bigint,
  first_message_at timestamptz,
  last_message_at timestamptz
)
LANGUAGE sql STABLE
AS $$
  SELECT channel,
         count(*) FILTER (WHERE m.version = 0),
         (SELECT count(*) FROM messages e
          WHERE e.channel_id = channel AND e.version > 0
            AND e.edit_date >= window_start AND e.edit_date < window_end),
         (SELECT count(*) FROM message_deletions d
          WHERE d.channel_id = channel AND d.deleted_at >= window_start AND d.deleted_at < window_end),
         count(*) FILTER (WHERE m.version = 0 AND m.media IS NOT NULL),
         count(DISTINCT m.sender_id),
         min(m.date),
         max(m.date)
  FROM messages m
  WHERE m.channel_id = channel AND m.date >= window_start AND m.date < window_end
$$;

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

-- Writes one version of a message. A version already stored keeps its text
-- (versions are immutable) but takes the newer view and forward counts; a
-- version of a message already deleted is born deleted. Returns true when the
-- version was new.
CREATE FUNCTION upsert_message_version(
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

-- Records a channel's state. Each field given replaces the stored one, except
-- the update state: pts, last message id and last seen only move forward, so
-- a late or replayed update can never rewind the position the gateway resumes
-- from. Returns the stored pts.
CREATE FUNCTION upsert_channel_state(
  channel bigint,
  pts integer DEFAULT NULL,
  last_message integer DEFAULT NULL,
  seen_at timestamptz DEFAULT now(),
  channel_access_hash text DEFAULT NULL,
  channel_username text DEFAULT NULL,
  channel_title text DEFAULT NULL,
  channel_kind text DEFAULT NULL
) RETURNS integer
LANGUAGE sql
AS $$
  INSERT INTO channels AS c (channel_id, access_hash, username, title, kind, last_pts, last_message_id, last_seen_at, updated_at)
  VALUES (channel, channel_access_hash, channel_username, channel_title, channel_kind, pts, last_message, seen_at, now())
  ON CONFLICT (channel_id) DO UPDATE SET
    access_hash     = coalesce(EXCLUDED.access_hash, c.access_hash),
    username        = coalesce(EXCLUDED.username, c.username),
    title           = coalesce(EXCLUDED.title, c.title),
    kind            = coalesce(EXCLUDED.kind, c.kind),
    last_pts        = greatest(c.last_pts, EXCLUDED.last_pts),
    last_message_id = greatest(c.last_message_id, EXCLUDED.last_message_id),
    last_seen_at    = greatest(c.last_seen_at, EXCLUDED.last_seen_at),
    updated_at      = now()
  RETURNING last_pts
$$;
