-- Rollback of 0007.
DROP TABLE IF EXISTS legacy_import_progress;
