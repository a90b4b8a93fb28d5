-- 0035: an account whose session Telegram refused (AUTH_KEY_UNREGISTERED,
-- SESSION_REVOKED, USER_DEACTIVATED, AUTH_KEY_DUPLICATED) needs a new login;
-- until then no process may take it with the same key, or each standby in
-- turn would connect, be refused and exit. The owner that was refused marks
-- the row under its own epoch (a process that lost the lease cannot), naming
-- the refused key by a fingerprint (never the key), so a process given a new
-- session file for the account takes it again. `telegram-gateway login`
-- clears the mark. src/layers/PgAccountLeases.ts reads and writes it.
ALTER TABLE account_leases
  ADD COLUMN login_needed_reason text,
  ADD COLUMN login_needed_key text,
  ADD COLUMN login_needed_at timestamptz,
  ADD COLUMN login_needed_epoch bigint,
  ADD CONSTRAINT account_leases_login_needed_whole CHECK (
    (login_needed_reason IS NULL) = (login_needed_key IS NULL)
    AND (login_needed_reason IS NULL) = (login_needed_at IS NULL)
    AND (login_needed_reason IS NULL) = (login_needed_epoch IS NULL)
  );
