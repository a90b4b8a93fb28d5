-- 0040: a processed mark reaches a version in a compressed TimescaleDB chunk.
--
-- The trigger of 0019 set processed_at with one UPDATE joined to the marked
-- keys. TimescaleDB can change a row of a compressed chunk only by first
-- decompressing the batches that may hold it, and it narrows them down only
-- by constants in the statement's own WHERE (segmentby and orderby columns,
-- sparse indexes): for an UPDATE with a join it decompresses every batch of
-- every compressed chunk in the plan, which on a million rows passed its
-- limit of 100,000 tuples per statement
-- (timescaledb.max_tuples_decompressed_per_dml_transaction) and failed the
-- mark, or took seconds below it.
--
-- On TimescaleDB the trigger now finds the versions still unprocessed (a
-- read: transparent decompression filters batches by the join's values), then
-- updates each with its key, date and event_seq as literals: chunk exclusion
-- on `date` leaves its one chunk, and the batch filters leave the one batch
-- holding it (at most 1,000 rows) to decompress. A decompressed batch stays
-- in the chunk's uncompressed part until the compression policy recompresses
-- the chunk (docs/database.md). Plain PostgreSQL keeps 0019's single UPDATE.

CREATE OR REPLACE FUNCTION record_first_processed() RETURNS trigger
LANGUAGE plpgsql
AS $$
DECLARE
  version record;
BEGIN
  IF EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = 'messages'::regclass) THEN
    UPDATE messages m SET processed_at = now()
    FROM marked, LATERAL parse_version_key(marked.event_key) k
    WHERE m.channel_id = k.channel_id AND m.message_id = k.message_id AND m.version = k.version
      AND m.processed_at IS NULL;
    RETURN NULL;
  END IF;
  FOR version IN
    SELECT m.channel_id, m.message_id, m.version, m.date, m.event_seq
    FROM (SELECT DISTINCT k.channel_id, k.message_id, k.version
          FROM marked, LATERAL parse_version_key(marked.event_key) k) k
    JOIN messages m ON m.channel_id = k.channel_id AND m.message_id = k.message_id AND m.version = k.version
    WHERE m.processed_at IS NULL
  LOOP
    -- Literals, not parameters: TimescaleDB reads batch filters only from
    -- constants. Every value is a number or a timestamp (%L quotes it).
    EXECUTE format(
      'UPDATE messages SET processed_at = now() '
      'WHERE channel_id = %s AND message_id = %s AND version = %s AND date = %L AND event_seq = %s '
      'AND processed_at IS NULL',
      version.channel_id, version.message_id, version.version, version.date, version.event_seq);
  END LOOP;
  RETURN NULL;
END
$$;
