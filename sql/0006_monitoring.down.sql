-- Rollback of 0006.
DROP VIEW IF EXISTS monitor_unprocessed_backlog;
DROP VIEW IF EXISTS monitor_activity;
DROP VIEW IF EXISTS monitor_index_usage;
DROP VIEW IF EXISTS monitor_table_sizes;
