-- Rollback of 0003.
DROP TRIGGER IF EXISTS consumer_processed_marks_messages ON consumer_processed;
DROP FUNCTION IF EXISTS record_first_processed();
DROP INDEX IF EXISTS messages_sender_idx;
DROP INDEX IF EXISTS messages_channel_date_idx;
DROP INDEX IF EXISTS messages_media_idx;
DROP INDEX IF EXISTS messages_entities_idx;
DROP INDEX IF EXISTS messages_text_search_idx;
DROP INDEX IF EXISTS messages_unprocessed_idx;
DROP INDEX IF EXISTS message_deletions_event_seq_idx;
DROP INDEX IF EXISTS messages_event_seq_idx;
DROP INDEX IF EXISTS messages_channel_event_idx;
ALTER TABLE messages DROP COLUMN IF EXISTS processed_at;
