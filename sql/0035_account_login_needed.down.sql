ALTER TABLE account_leases
  DROP CONSTRAINT IF EXISTS account_leases_login_needed_whole,
  DROP COLUMN IF EXISTS login_needed_reason,
  DROP COLUMN IF EXISTS login_needed_key,
  DROP COLUMN IF EXISTS login_needed_at,
  DROP COLUMN IF EXISTS login_needed_epoch;
