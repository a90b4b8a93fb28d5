-- Consumers of the HTTP API: where each one is in the event stream, and which
-- events it has processed. Written only by telegram-gateway-api.

-- A consumer's position: the event_seq it has consumed up to (inclusive).
CREATE TABLE consumer_checkpoints (
  consumer   text PRIMARY KEY CHECK (consumer ~ '^[A-Za-z0-9_.-]{1,64}$'),
  event_seq  bigint NOT NULL CHECK (event_seq >= 0),
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- "Consumer X has processed event K", K being the stable event key
-- (channel:message:version or channel:message:deleted). Marking twice is a no-op.
CREATE TABLE consumer_processed (
  consumer     text NOT NULL CHECK (consumer ~ '^[A-Za-z0-9_.-]{1,64}$'),
  event_key    text NOT NULL CHECK (event_key ~ '^[0-9]{1,19}:[0-9]{1,10}:([0-9]{1,10}|deleted)$'),
  processed_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (consumer, event_key)
);
