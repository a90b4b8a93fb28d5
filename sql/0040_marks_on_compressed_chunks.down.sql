-- Back to 0019's trigger function: one UPDATE joined to the marked keys
-- (processed_at values set since stay: they are true either way).
CREATE OR REPLACE FUNCTION record_first_processed() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
  UPDATE messages m SET processed_at = now()
  FROM marked, LATERAL parse_version_key(marked.event_key) k
  WHERE m.channel_id = k.channel_id AND m.message_id = k.message_id AND m.version = k.version
    AND m.processed_at IS NULL;
  RETURN NULL;
END
$$;
