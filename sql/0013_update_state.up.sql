-- 0013: the Telegram update engine's own state (src/layers/PgUpdateStateStore.ts).
-- It only ever holds what is committed: a channel's pts moves here once the
-- events it covers are in `messages` (src/domain/SourceBatch.ts), so a crash
-- at any instant resumes from exactly here.
--
-- Every row carries the `epoch` of the gateway instance that wrote it (0 for
-- a plain single instance, the lease's fencing token under high
-- availability). A write with a lower epoch than the stored one is refused:
-- an instance that lost its lease cannot move the state back.

CREATE TABLE telegram_channel_state (
  channel_id     bigint PRIMARY KEY,
  -- The channel's pts up to which every update is committed.
  pts            integer NOT NULL CHECK (pts > 0),
  -- The newest message id committed: where too-long recovery reads history from.
  top_message_id integer NOT NULL DEFAULT 0,
  epoch          bigint NOT NULL DEFAULT 0,
  updated_at     timestamptz NOT NULL DEFAULT now()
);

-- The account's common sequence (private chats, basic groups): one row.
CREATE TABLE telegram_account_state (
  singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  pts        integer NOT NULL,
  qts        integer NOT NULL,
  date       integer NOT NULL,
  seq        integer NOT NULL,
  epoch      bigint NOT NULL DEFAULT 0,
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- FLOOD_WAITs longer than the gateway sleeps through, per method and chat
-- (chat_id 0: not about one chat), so a restart does not call again early.
CREATE TABLE telegram_flood_waits (
  method  text NOT NULL,
  chat_id bigint NOT NULL DEFAULT 0,
  until   timestamptz NOT NULL,
  PRIMARY KEY (method, chat_id)
);

CREATE FUNCTION refuse_stale_update_state_epoch() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
  IF NEW.epoch < OLD.epoch THEN
    RAISE EXCEPTION 'stale update-state epoch: % is owned by epoch %, a write with epoch % is refused (another gateway instance took over this session)',
      TG_TABLE_NAME, OLD.epoch, NEW.epoch
      USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END
$$;

CREATE TRIGGER telegram_channel_state_epoch BEFORE UPDATE ON telegram_channel_state
  FOR EACH ROW EXECUTE FUNCTION refuse_stale_update_state_epoch();
CREATE TRIGGER telegram_account_state_epoch BEFORE UPDATE ON telegram_account_state
  FOR EACH ROW EXECUTE FUNCTION refuse_stale_update_state_epoch();
