-- 0019: a processed mark reaches every version it names.
--
-- The trigger of 0003 matched keys with `^[0-9]{1,18}:[0-9]{1,9}:[0-9]{1,9}$`,
-- but an edit's version is its edit date in unix seconds (10 digits) and a
-- channel id may have 19 digits, as consumer_processed's own CHECK (0002)
-- allows: marks for edits were stored while messages.processed_at stayed NULL.
-- Now every key the CHECK admits is parsed; a number too large for its column
-- (which no stored row can carry) matches nothing instead of failing the cast.

-- The stored row a version key names, or NULLs: CASE evaluates its branches
-- in order, so a cast never sees a value out of its type's range.
CREATE FUNCTION parse_version_key(event_key text, OUT channel_id bigint, OUT message_id integer, OUT version integer)
LANGUAGE sql IMMUTABLE STRICT
AS $$
  SELECT CASE WHEN parts[1]::numeric <= 9223372036854775807 THEN parts[1]::bigint END,
         CASE WHEN parts[2]::numeric <= 2147483647 THEN parts[2]::integer END,
         CASE WHEN parts[3]::numeric <= 2147483647 THEN parts[3]::integer END
  FROM (SELECT CASE WHEN event_key ~ '^[0-9]{1,19}:[0-9]{1,10}:[0-9]{1,10}$'
                    THEN string_to_array(event_key, ':') END AS parts) k
$$;

-- Sets processed_at on the versions just marked, once per statement.
-- Deletion keys name no version and are skipped.
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

-- The repair: versions marked before this migration get the time of their
-- first mark.
UPDATE messages m SET processed_at = k.first_processed_at
FROM (
  SELECT v.channel_id, v.message_id, v.version, min(p.processed_at) AS first_processed_at
  FROM consumer_processed p, LATERAL parse_version_key(p.event_key) v
  WHERE p.event_key !~ ':deleted$'
  GROUP BY 1, 2, 3
) k
WHERE m.channel_id = k.channel_id AND m.message_id = k.message_id AND m.version = k.version
  AND m.processed_at IS NULL;
