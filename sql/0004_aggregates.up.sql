-- 0004: hourly and daily counts per channel, and the storage policies.
--
-- With TimescaleDB: continuous aggregates with refresh policies. Without it:
-- materialized views of the same names and columns, refreshed by the gateway
-- (src/programs/AggregateRefresher.ts calls refresh_message_aggregates()).
-- Buckets are UTC hours and days either way: time_bucket and date_bin with a
-- midnight-UTC origin agree.
--
-- Counted from the messages table alone (a continuous aggregate reads one
-- hypertable): messages = originals (version 0), edits = later versions,
-- deletions = originals soft-deleted, media = originals carrying media.

DO $$
DECLARE
  timescale constant boolean := EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb');
  bucket_sizes constant text[] := ARRAY['hourly:1 hour', 'daily:1 day'];
  entry text;
  view_name text;
  bucket_width text;
  body constant text := $body$
    SELECT channel_id,
           %s AS bucket,
           count(*) FILTER (WHERE version = 0) AS messages,
           count(*) FILTER (WHERE version > 0) AS edits,
           count(*) FILTER (WHERE version = 0 AND deleted_at IS NOT NULL) AS deletions,
           count(*) FILTER (WHERE version = 0 AND media IS NOT NULL) AS media
    FROM messages
    GROUP BY 1, 2
  $body$;
BEGIN
  FOREACH entry IN ARRAY bucket_sizes LOOP
    view_name := 'message_counts_' || split_part(entry, ':', 1);
    bucket_width := split_part(entry, ':', 2);
    IF timescale THEN
      -- TimescaleDB only. WITH NO DATA: allowed inside the migration's
      -- transaction; the policy fills it.
      EXECUTE format('CREATE MATERIALIZED VIEW %I WITH (timescaledb.continuous) AS %s WITH NO DATA',
                     view_name, format(body, format('time_bucket(INTERVAL %L, date)', bucket_width)));
      PERFORM add_continuous_aggregate_policy(view_name::regclass,
        start_offset => CASE bucket_width WHEN '1 hour' THEN INTERVAL '3 days' ELSE INTERVAL '30 days' END,
        end_offset => CASE bucket_width WHEN '1 hour' THEN INTERVAL '1 hour' ELSE INTERVAL '1 day' END,
        schedule_interval => CASE bucket_width WHEN '1 hour' THEN INTERVAL '15 minutes' ELSE INTERVAL '1 hour' END);
    ELSE
      EXECUTE format('CREATE MATERIALIZED VIEW %I AS %s WITH NO DATA',
                     view_name, format(body, format('date_bin(INTERVAL %L, date, TIMESTAMPTZ %L)', bucket_width, '2000-01-01 00:00:00+00')));
      -- Unique: REFRESH ... CONCURRENTLY needs it, and readers are never blocked.
      EXECUTE format('CREATE UNIQUE INDEX %I ON %I (channel_id, bucket)', view_name || '_key', view_name);
    END IF;
  END LOOP;
END
$$;

-- Plain PostgreSQL: brings both views up to date; the first refresh fills
-- them, later ones run CONCURRENTLY. SECURITY DEFINER: the application role
-- may call it without owning the views. Returns false on TimescaleDB, whose
-- policies refresh the continuous aggregates themselves.
CREATE FUNCTION refresh_message_aggregates() RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE
  view_name text;
BEGIN
  IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
    RETURN false;
  END IF;
  -- One refresher at a time across gateways; others skip this round.
  IF NOT pg_try_advisory_xact_lock(hashtext('refresh_message_aggregates')) THEN
    RETURN false;
  END IF;
  FOREACH view_name IN ARRAY ARRAY['message_counts_hourly', 'message_counts_daily'] LOOP
    IF (SELECT relispopulated FROM pg_class WHERE oid = view_name::regclass) THEN
      EXECUTE format('REFRESH MATERIALIZED VIEW CONCURRENTLY %I', view_name);
    ELSE
      EXECUTE format('REFRESH MATERIALIZED VIEW %I', view_name);
    END IF;
  END LOOP;
  RETURN true;
END
$$;

-- Plain PostgreSQL retention: drops the daily partitions wholly older than
-- `retention` and deletes such rows from the default partition. Run by
-- apply_storage_policies() and by the gateway's refresher on its schedule.
-- A no-op on TimescaleDB, whose retention policy drops chunks.
CREATE FUNCTION drop_expired_message_partitions(retention interval) RETURNS SETOF text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE
  partition record;
  deleted bigint;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = 'messages'::regclass) THEN
    RETURN;
  END IF;
  PERFORM pg_advisory_xact_lock(hashtext('ensure_message_partitions'));
  FOR partition IN
    SELECT c.relname
    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = 'messages'::regclass AND c.relname ~ '^messages_p[0-9]{8}$'
      AND (to_date(substring(c.relname FROM 11), 'YYYYMMDD') + 1)::timestamp AT TIME ZONE 'UTC' <= now() - retention
    ORDER BY c.relname
  LOOP
    EXECUTE format('DROP TABLE %I', partition.relname);
    RETURN NEXT format('dropped %s (older than %s)', partition.relname, retention);
  END LOOP;
  DELETE FROM messages_default WHERE date < now() - retention;
  GET DIAGNOSTICS deleted = ROW_COUNT;
  IF deleted > 0 THEN
    RETURN NEXT format('deleted %s rows older than %s from messages_default', deleted, retention);
  END IF;
END
$$;

-- The configured storage policies (database.chunkInterval, compressAfter,
-- retention), applied by `telegram-gateway migrate` after the files, since a
-- migration file cannot read the configuration. Idempotent: a rerun with other
-- values replaces the policies. Returns what it did, one line per policy.
--
-- TimescaleDB: chunk interval for new chunks, columnstore compression after
-- compress_after, chunks dropped after retention. Plain PostgreSQL: the
-- partitions are daily whatever the chunk interval, there is no compression,
-- and retention drops the daily partitions wholly older than it.
CREATE FUNCTION apply_storage_policies(chunk_interval interval, compress_after interval, retention interval)
RETURNS SETOF text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
    -- TimescaleDB only, as its 2.x API documents.
    PERFORM set_chunk_time_interval('messages', chunk_interval);
    RETURN NEXT format('chunk interval %s', chunk_interval);
    PERFORM remove_compression_policy('messages', if_exists => true);
    IF compress_after IS NOT NULL THEN
      -- Settings cannot change once chunks are compressed: set them once.
      IF NOT (SELECT compression_enabled FROM timescaledb_information.hypertables
              WHERE hypertable_name = 'messages') THEN
        ALTER TABLE messages SET (
          timescaledb.compress,
          timescaledb.compress_segmentby = 'channel_id',
          timescaledb.compress_orderby = 'message_id DESC, version DESC'
        );
      END IF;
      PERFORM add_compression_policy('messages', compress_after => compress_after);
      RETURN NEXT format('compress chunks older than %s', compress_after);
    END IF;
    PERFORM remove_retention_policy('messages', if_exists => true);
    IF retention IS NOT NULL THEN
      PERFORM add_retention_policy('messages', drop_after => retention);
      RETURN NEXT format('drop chunks older than %s', retention);
    END IF;
    RETURN;
  END IF;
  RETURN NEXT 'daily partitions (plain PostgreSQL: chunk interval and compression do not apply)';
  IF retention IS NOT NULL THEN
    RETURN QUERY SELECT * FROM drop_expired_message_partitions(retention);
  END IF;
END
$$;
