-- 0006: monitoring views, for operators and postgres-exporter queries.

-- Every table of the schema and each partition (or TimescaleDB chunk: chunks
-- are inheritance children of the hypertable too) with its size. Daily
-- partitions make growth readable directly: bytes and rows per day.
-- inserted_since_reset counts rows inserted since statistics were reset.
CREATE VIEW monitor_table_sizes AS
SELECT n.nspname AS schema_name,
       c.relname AS table_name,
       parent.relname AS parent_table,
       pg_get_expr(c.relpartbound, c.oid) AS partition_range,
       greatest(c.reltuples, 0)::bigint AS estimated_rows,
       pg_table_size(c.oid) AS table_bytes,
       pg_indexes_size(c.oid) AS index_bytes,
       pg_total_relation_size(c.oid) AS total_bytes,
       pg_size_pretty(pg_total_relation_size(c.oid)) AS total_size,
       coalesce(s.n_tup_ins, 0) AS inserted_since_reset,
       coalesce(s.n_dead_tup, 0) AS dead_rows,
       s.last_autovacuum,
       s.last_autoanalyze
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_inherits i ON i.inhrelid = c.oid
LEFT JOIN pg_class parent ON parent.oid = i.inhparent
LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
WHERE c.relkind IN ('r', 'p', 'm')
  AND (n.nspname = 'public' OR n.nspname = '_timescaledb_internal')
ORDER BY pg_total_relation_size(c.oid) DESC;

-- Each index with how often it has been used: an index with zero scans after
-- a week of traffic costs writes for nothing. Partition indexes are listed
-- one by one; parent_index names the index they belong to.
CREATE VIEW monitor_index_usage AS
SELECT s.relname AS table_name,
       s.indexrelname AS index_name,
       parent.relname AS parent_index,
       s.idx_scan AS scans,
       s.idx_tup_read AS tuples_read,
       s.idx_tup_fetch AS tuples_fetched,
       pg_relation_size(s.indexrelid) AS index_bytes,
       pg_size_pretty(pg_relation_size(s.indexrelid)) AS index_size,
       x.indisunique AS is_unique,
       s.idx_scan = 0 AND NOT x.indisunique AS unused
FROM pg_stat_user_indexes s
JOIN pg_index x ON x.indexrelid = s.indexrelid
LEFT JOIN pg_inherits i ON i.inhrelid = s.indexrelid
LEFT JOIN pg_class parent ON parent.oid = i.inhparent
ORDER BY s.idx_scan, pg_relation_size(s.indexrelid) DESC;

-- What runs and what waits, longest first: every non-idle session of this
-- database but the caller, with how long its statement and transaction have
-- run, what it waits on, which sessions block it, and the locks it waits for.
CREATE VIEW monitor_activity AS
SELECT a.pid,
       a.usename AS role_name,
       a.application_name,
       a.state,
       now() - a.query_start AS query_duration,
       now() - a.xact_start AS transaction_duration,
       a.wait_event_type,
       a.wait_event,
       pg_blocking_pids(a.pid) AS blocked_by,
       (SELECT array_agg(l.locktype || ' ' || l.mode ORDER BY l.locktype, l.mode)
        FROM pg_locks l WHERE l.pid = a.pid AND NOT l.granted) AS waiting_for_locks,
       left(a.query, 500) AS query
FROM pg_stat_activity a
WHERE a.datname = current_database()
  AND a.pid <> pg_backend_pid()
  AND a.backend_type = 'client backend'
  AND a.state IS DISTINCT FROM 'idle'
ORDER BY a.query_start NULLS LAST;

-- The processing backlog per channel: versions no consumer has marked
-- processed yet. Reads only messages_unprocessed_idx.
CREATE VIEW monitor_unprocessed_backlog AS
SELECT channel_id, count(*) AS versions, min(event_seq) AS oldest_event_seq
FROM messages
WHERE processed_at IS NULL
GROUP BY channel_id
ORDER BY channel_id;
