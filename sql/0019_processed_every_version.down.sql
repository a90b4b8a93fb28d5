-- Back to 0003's trigger function (the repaired processed_at values stay:
-- they are true either way).
CREATE OR REPLACE FUNCTION record_first_processed() RETURNS trigger
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

DROP FUNCTION parse_version_key(text);
