DROP TABLE IF EXISTS consumer_processed;
DROP TABLE IF EXISTS consumer_checkpoints;
