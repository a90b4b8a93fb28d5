-- 0018: the update state (0013) per Telegram account, fenced by the
-- account's lease (0016, 0017). Two accounts listening to one channel keep
-- their own pts for it, and each account has its own common sequence. Rows
-- written before this belong to the account `default` (the single account
-- of a configuration without `telegram.accounts`).
ALTER TABLE telegram_channel_state ADD COLUMN account text NOT NULL DEFAULT 'default';
ALTER TABLE telegram_channel_state DROP CONSTRAINT telegram_channel_state_pkey;
ALTER TABLE telegram_channel_state ADD PRIMARY KEY (account, channel_id);

ALTER TABLE telegram_account_state ADD COLUMN account text NOT NULL DEFAULT 'default';
ALTER TABLE telegram_account_state DROP CONSTRAINT telegram_account_state_pkey;
ALTER TABLE telegram_account_state DROP COLUMN singleton;
ALTER TABLE telegram_account_state ADD PRIMARY KEY (account);

-- On top of 0013's rule (an epoch never goes back), a write for an account
-- that has a lease row (high availability runs it) must come from the
-- lease's current, unexpired holder: lease_fence (0017) refuses anything
-- else, and its share lock orders the write against a take-over. Accounts
-- without a lease row (a single instance's tools and tests) write as before.
CREATE FUNCTION check_update_state_lease() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM account_leases WHERE account = NEW.account) THEN
    PERFORM lease_fence(NEW.account, NEW.epoch);
  END IF;
  RETURN NEW;
END
$$;

CREATE TRIGGER telegram_channel_state_lease BEFORE INSERT OR UPDATE ON telegram_channel_state
  FOR EACH ROW EXECUTE FUNCTION check_update_state_lease();
CREATE TRIGGER telegram_account_state_lease BEFORE INSERT OR UPDATE ON telegram_account_state
  FOR EACH ROW EXECUTE FUNCTION check_update_state_lease();
