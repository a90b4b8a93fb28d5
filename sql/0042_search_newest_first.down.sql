-- Drops the index 0042 made on plain PostgreSQL; on TimescaleDB it is the
-- hypertable's own time index (create_hypertable, 0001) and stays.
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = 'messages'::regclass) THEN
    DROP INDEX IF EXISTS messages_date_idx;
  END IF;
END
$$;
