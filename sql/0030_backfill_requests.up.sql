-- 0030: backfill requests (`telegram-gateway backfill`, docs/operations.md,
-- "Backfilling history"). Only the process that owns an account may talk to
-- Telegram with its session (a second connection meets AUTH_KEY_DUPLICATED),
-- so the command does not connect: it writes a request here and the
-- account's owner (src/layers/GramJsTelegramSource.ts) pages the history
-- into the normal commit path, records how far every page is committed, and
-- marks the request done. A new owner (restart, take-over) resumes an
-- unfinished request from `cursor_id`.
CREATE TABLE backfill_requests (
  id           bigserial PRIMARY KEY,
  -- The account whose owner serves it (telegram.accounts, or `default`).
  account      text NOT NULL,
  -- The telegram.channels entry, exactly as configured for that account.
  channel      text NOT NULL,
  -- The range asked for: from a date or from a message id, up to a date or an id.
  since        timestamptz,
  until        timestamptz,
  from_id      integer CHECK (from_id > 0),
  until_id     integer CHECK (until_id > 0),
  status       text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'running', 'done', 'failed')),
  -- Resolved by the owner when it starts: message ids in (after_id, up_to_id].
  after_id     integer,
  up_to_id     integer,
  -- Every page up to this id is committed in `messages`: where a resumed run starts.
  cursor_id    integer,
  -- Messages read from history and committed (a resumed run counts again what followed its last saved cursor).
  messages     integer NOT NULL DEFAULT 0,
  error        text,
  requested_at timestamptz NOT NULL DEFAULT now(),
  started_at   timestamptz,
  updated_at   timestamptz NOT NULL DEFAULT now(),
  finished_at  timestamptz,
  CHECK (since IS NULL OR from_id IS NULL),
  CHECK (until IS NULL OR until_id IS NULL)
);

-- What an owner looks for every telegram.backfillPollInterval.
CREATE INDEX backfill_requests_unfinished ON backfill_requests (account, id) WHERE status IN ('pending', 'running');
