-- Rollback of 0001. schema_migrations stays: the runner deletes this
-- migration's row from it after the rollback, in the same transaction.
DROP TABLE IF EXISTS messages CASCADE;
DROP TABLE IF EXISTS message_deletions;
DROP TABLE IF EXISTS channels;
DROP FUNCTION IF EXISTS ensure_message_partitions(integer);
DROP SEQUENCE IF EXISTS event_seq;
