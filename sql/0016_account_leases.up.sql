-- 0016: who owns each Telegram account (docs/architecture.md, "High
-- availability"). One row per account: the owning process, the epoch it
-- holds, and when the lease ends unless renewed. All times are the
-- database's own clock (now()), so the hosts' clocks never have to agree.
-- `epoch` only ever grows: each acquisition adds one, and every write of
-- update state carries the epoch it was made under (0017 refuses stale ones).
CREATE TABLE account_leases (
  account     text PRIMARY KEY CHECK (account ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
  owner       text,
  epoch       bigint NOT NULL DEFAULT 0 CHECK (epoch >= 0),
  acquired_at timestamptz,
  renewed_at  timestamptz,
  expires_at  timestamptz NOT NULL DEFAULT '-infinity'
);

-- The gateway processes that are up, each renewing its row with its leases;
-- accounts are shared out among the rows that have not expired.
CREATE TABLE gateway_members (
  member     text PRIMARY KEY,
  host       text NOT NULL,
  pid        integer NOT NULL,
  started_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL
);
