-- Back to one update state: only the `default` account's rows survive.
DROP TRIGGER IF EXISTS telegram_account_state_lease ON telegram_account_state;
DROP TRIGGER IF EXISTS telegram_channel_state_lease ON telegram_channel_state;
DROP FUNCTION IF EXISTS check_update_state_lease();

DELETE FROM telegram_account_state WHERE account <> 'default';
ALTER TABLE telegram_account_state DROP CONSTRAINT telegram_account_state_pkey;
ALTER TABLE telegram_account_state ADD COLUMN singleton boolean NOT NULL DEFAULT true CHECK (singleton);
ALTER TABLE telegram_account_state ADD PRIMARY KEY (singleton);
ALTER TABLE telegram_account_state DROP COLUMN account;

DELETE FROM telegram_channel_state WHERE account <> 'default';
ALTER TABLE telegram_channel_state DROP CONSTRAINT telegram_channel_state_pkey;
ALTER TABLE telegram_channel_state ADD PRIMARY KEY (channel_id);
ALTER TABLE telegram_channel_state DROP COLUMN account;
