-- Rollback of 0005.
DROP FUNCTION IF EXISTS upsert_channel_state(bigint, integer, integer, timestamptz, text, text, text, text);
DROP FUNCTION IF EXISTS upsert_message_version(bigint, integer, integer, timestamptz, text, jsonb, timestamptz,
  timestamptz, bigint, text, text, jsonb, jsonb, integer, text, integer, integer);
DROP FUNCTION IF EXISTS search_messages(text, integer, bigint);
DROP FUNCTION IF EXISTS channel_statistics(bigint, timestamptz, timestamptz);
DROP FUNCTION IF EXISTS messages_after_cursor(text, integer, bigint, bigint);
