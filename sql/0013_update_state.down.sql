DROP TABLE telegram_flood_waits;
DROP TABLE telegram_account_state;
DROP TABLE telegram_channel_state;
DROP FUNCTION refuse_stale_update_state_epoch();
