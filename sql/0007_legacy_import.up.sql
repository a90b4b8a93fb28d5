-- 0007: where `telegram-gateway db import` has got to, per source, so an
-- interrupted import resumes after the last key it committed. The key of the
-- legacy table is (channel_id, message_id); both are NULL before the first batch.
CREATE TABLE legacy_import_progress (
  source          text PRIMARY KEY,
  last_channel_id bigint,
  last_message_id bigint,
  copied          bigint NOT NULL DEFAULT 0,
  started_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now(),
  finished_at     timestamptz
);
