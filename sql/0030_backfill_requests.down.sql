DROP TABLE IF EXISTS backfill_requests;
