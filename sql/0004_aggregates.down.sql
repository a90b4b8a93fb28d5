-- Rollback of 0004. On TimescaleDB dropping a continuous aggregate drops its
-- policy too.
DROP FUNCTION IF EXISTS apply_storage_policies(interval, interval, interval);
DROP FUNCTION IF EXISTS drop_expired_message_partitions(interval);
DROP FUNCTION IF EXISTS refresh_message_aggregates();
DROP MATERIALIZED VIEW IF EXISTS message_counts_daily;
DROP MATERIALIZED VIEW IF EXISTS message_counts_hourly;
