-- 0001: the durable record of messages, their versions and deletions.
-- Runs in one transaction (src/layers/Migrations.ts).

-- The runner creates it before reading it; repeated here so the schema is
-- complete from the migration files alone.
CREATE TABLE IF NOT EXISTS schema_migrations (
  version    integer PRIMARY KEY,
  name       text NOT NULL,
  checksum   text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now()
);

-- One global order over message versions and deletions, for cursor polling.
-- Values are taken at insert but transactions commit out of order: a reader
-- must not advance its cursor past a value that may still commit below it.
CREATE SEQUENCE event_seq AS bigint;

-- Each configured chat, resolved once by the Telegram source.
CREATE TABLE channels (
  channel_id      bigint PRIMARY KEY,
  access_hash     text,
  username        text,
  title           text,
  kind            text CHECK (kind IN ('channel', 'supergroup', 'group')),
  last_pts        integer,
  last_message_id integer,
  last_seen_at    timestamptz,
  updated_at      timestamptz NOT NULL DEFAULT now()
);

-- Recorded even when the message itself was never stored, so a version that
-- arrives later is born deleted.
CREATE TABLE message_deletions (
  channel_id  bigint NOT NULL,
  message_id  integer NOT NULL,
  deleted_at  timestamptz NOT NULL,
  received_at timestamptz NOT NULL,
  event_seq   bigint NOT NULL DEFAULT nextval('event_seq'),
  PRIMARY KEY (channel_id, message_id)
);

-- Plain PostgreSQL: daily range partitions, created ahead by the gateway. A
-- day that already has rows in the default partition has them moved into its
-- new partition, so calling this late is still correct. The transaction lock
-- serializes concurrent callers (safe through PgBouncer: it ends at commit).
CREATE FUNCTION ensure_message_partitions(days_ahead integer)
RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
  today          date := (now() AT TIME ZONE 'UTC')::date;
  day            date;
  partition_name text;
  day_start      timestamptz;
  day_end        timestamptz;
  created        integer := 0;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = 'messages'::regclass) THEN
    RETURN 0; -- a TimescaleDB hypertable makes its own chunks
  END IF;
  PERFORM pg_advisory_xact_lock(hashtext('ensure_message_partitions'));
  FOR offset_days IN 0 .. greatest(days_ahead, 0) LOOP
    day := today + offset_days;
    partition_name := format('messages_p%s', to_char(day, 'YYYYMMDD'));
    CONTINUE WHEN to_regclass(partition_name) IS NOT NULL;
    day_start := day::timestamp AT TIME ZONE 'UTC';
    day_end := (day + 1)::timestamp AT TIME ZONE 'UTC';
    EXECUTE format('CREATE TABLE %I (LIKE messages INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', partition_name);
    EXECUTE format(
      'WITH moved AS (DELETE FROM messages_default WHERE date >= %L AND date < %L RETURNING *) '
      'INSERT INTO %I SELECT * FROM moved', day_start, day_end, partition_name);
    EXECUTE format('ALTER TABLE messages ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', partition_name, day_start, day_end);
    created := created + 1;
  END LOOP;
  RETURN created;
END
$$;

-- One row per message version: the original is version 0, an edit is
-- versioned by its edit_date. `date` is the message's own date, identical for
-- every version, so the key with it is as unique as without it.
DO $$
DECLARE
  columns constant text := $columns$
    channel_id          bigint NOT NULL,
    message_id          integer NOT NULL,
    version             integer NOT NULL,
    date                timestamptz NOT NULL,
    edit_date           timestamptz,
    sender_id           bigint,
    sender_kind         text,
    sender_name         text,
    text                text NOT NULL,
    text_escaped        boolean NOT NULL DEFAULT false,
    entities            jsonb NOT NULL DEFAULT '[]',
    media               jsonb,
    reply_to_message_id integer,
    grouped_id          text,
    views               integer,
    forwards            integer,
    raw                 jsonb NOT NULL,
    received_at         timestamptz NOT NULL,
    ingested_at         timestamptz NOT NULL DEFAULT now(),
    deleted_at          timestamptz,
    event_seq           bigint NOT NULL DEFAULT nextval('event_seq'),
    PRIMARY KEY (channel_id, message_id, version, date)
  $columns$;
BEGIN
  -- Available alone is not enough: CREATE EXTENSION fails unless the library
  -- is preloaded, so both are checked.
  IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')
     AND current_setting('shared_preload_libraries') LIKE '%timescaledb%' THEN
    CREATE EXTENSION IF NOT EXISTS timescaledb;
    EXECUTE format('CREATE TABLE messages (%s)', columns);
    PERFORM create_hypertable('messages', by_range('date', INTERVAL '1 day'));
  ELSE
    EXECUTE format('CREATE TABLE messages (%s) PARTITION BY RANGE (date)', columns);
    CREATE TABLE messages_default PARTITION OF messages DEFAULT;
    PERFORM ensure_message_partitions(7);
  END IF;
END
$$;
