-- 0010: the bus relay's progress (a transactional outbox over the event log).
--
-- Every committed event has an event_seq; the relay (src/programs/BusRelay.ts)
-- publishes, in commit order, each one that RabbitMQ has not confirmed yet,
-- and records here how far it has got for each exchange: every event with a
-- lower or equal event_seq is confirmed on that exchange. After a crash the
-- relay resumes from this mark, so a committed event reaches the bus at least
-- once whatever happened to the process that committed it.
CREATE TABLE bus_relay_marks (
  exchange       text PRIMARY KEY,
  published_seq  bigint NOT NULL CHECK (published_seq >= 0),
  updated_at     timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE bus_relay_marks IS
  'Per RabbitMQ exchange: every committed event with event_seq <= published_seq has a publisher confirm';
