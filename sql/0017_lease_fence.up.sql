-- 0017: fencing. A process that froze, lost its lease and woke up must not
-- write update state under the epoch it used to hold. Every such write runs
-- `SELECT lease_fence(account, epoch)` first, in the same transaction: it
-- takes a share lock on the lease row (an acquisition, which updates the row,
-- waits for the write to commit, and a write waits for an acquisition) and
-- raises SQLSTATE TGF01 unless `epoch` is the account's current one and the
-- lease has not expired.
CREATE FUNCTION lease_fence(p_account text, p_epoch bigint) RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
  current_epoch bigint;
  current_expiry timestamptz;
BEGIN
  SELECT epoch, expires_at INTO current_epoch, current_expiry
  FROM account_leases WHERE account = p_account FOR SHARE;
  IF current_epoch IS NULL OR current_epoch <> p_epoch OR current_expiry <= now() THEN
    RAISE EXCEPTION 'fenced: account % is at epoch %, this write was made under epoch %',
      p_account, coalesce(current_epoch::text, 'none'), p_epoch
      USING ERRCODE = 'TGF01',
            HINT = 'this process lost the account''s lease (frozen or cut off longer than ha.leaseTtl); it steps down';
  END IF;
END
$$;
