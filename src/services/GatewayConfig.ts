/**
 * The gateway's configuration: one section per concern, each a `Config` that
 * the layer needing it yields. Every key has a default or fails at start with
 * its name. Keys are paths such as `database.poolSize`; in the environment
 * they are constant case (`DATABASE_POOL_SIZE`), in the JSON config file they
 * are nested objects. README.md has the table; `.env.example` the comments.
 */
import { Config, ConfigProvider, Duration, Effect, Redacted, Schema } from "effect"

const positiveInt = (name: string, fallback: number) =>
  Config.schema(Schema.Int.check(Schema.isGreaterThan(0)), name).pipe(Config.withDefault(fallback))

const duration = (name: string, fallback: Duration.Input) =>
  Config.Duration(name).pipe(Config.withDefault(Duration.fromInputUnsafe(fallback)))

const string = (name: string, fallback: string) => Config.String(name).pipe(Config.withDefault(fallback))

const secret = (name: string, fallback: string) => Config.Redacted(name).pipe(Config.withDefault(Redacted.make(fallback)))

/** A comma-separated list in the environment, a JSON array in the file. */
const list = (name: string) =>
  Config.Array(Schema.String, name).pipe(
    Config.orElse(() =>
      Config.String(name).pipe(Config.map((value) => value.split(",").map((item) => item.trim()).filter((item) => item.length > 0)))
    ),
    Config.withDefault([] as ReadonlyArray<string>)
  )

export const DatabaseConfig = Config.all({
  /** The application's pool, through PgBouncer in transaction mode. */
  url: secret("url", "postgres://telegram_gateway:telegram_gateway@127.0.0.1:6434/telegram_gateway"),
  /** Direct connection for migrations: they take a session lock PgBouncer would not keep. */
  migrationUrl: secret("migrationUrl", "postgres://telegram_gateway:telegram_gateway@127.0.0.1:5432/telegram_gateway"),
  poolSize: positiveInt("poolSize", 8),
  connectTimeout: duration("connectTimeout", "5 seconds"),
  /** Upper bound on one batch write; a hung statement is retried rather than waited on forever. */
  statementTimeout: duration("statementTimeout", "10 seconds"),
  /** TimescaleDB chunk width for new chunks (plain PostgreSQL partitions are always daily). */
  chunkInterval: duration("chunkInterval", "1 day"),
  /** TimescaleDB: compress chunks older than this; unset, nothing is compressed. */
  compressAfter: Config.Duration("compressAfter").pipe(Config.option),
  /** Drop messages older than this (chunks, or daily partitions); unset, everything is kept. */
  retention: Config.Duration("retention").pipe(Config.option),
  /** Plain PostgreSQL: how often the gateway refreshes the hourly and daily count views. */
  aggregateRefreshInterval: duration("aggregateRefreshInterval", "5 minutes")
}).pipe(Config.nested("database"))
export type DatabaseConfig = Config.Success<typeof DatabaseConfig>

/** `host:port` of one Redis Sentinel. */
export interface SentinelAddress {
  readonly host: string
  readonly port: number
}

const sentinelAddresses = list("sentinels").pipe(
  Config.mapEffect((entries) =>
    Effect.forEach(entries, (entry) => {
      const match = /^\[?([^\]]+?)\]?:(\d{1,5})$/.exec(entry)
      const port = Number(match?.[2])
      return match !== null && port > 0 && port < 65536
        ? Effect.succeed<SentinelAddress>({ host: match[1]!, port })
        : Effect.fail(
          new Config.ConfigError(
            new ConfigProvider.SourceError({ message: `redis.sentinels: "${entry}" is not host:port` })
          )
        )
    })
  )
)

export const RedisConfig = Config.all({
  /**
   * Without sentinels, the server. With sentinels, only its password and
   * database number are used: the master's address comes from the sentinels.
   */
  url: secret("url", "redis://127.0.0.1:6379/0"),
  /** Redis Sentinel addresses; set, the client follows the master through failovers (deploy/redis/). */
  sentinels: sentinelAddresses,
  /** The master's name in the sentinels' configuration (`sentinel monitor NAME ...`). */
  sentinelMasterName: string("sentinelMasterName", "telegram-gateway"),
  /** Password of the sentinels themselves, when they require one (`requirepass` in sentinel.conf). */
  sentinelPassword: Config.Redacted("sentinelPassword").pipe(Config.option),
  keyPrefix: string("keyPrefix", "tg:"),
  /** Recent messages kept per channel, by count and by age. */
  recentLimit: positiveInt("recentLimit", 1000),
  recentMaxAge: duration("recentMaxAge", "24 hours"),
  /** How long a message key stays known to the dedup check. */
  dedupTtl: duration("dedupTtl", "7 days"),
  /** Per command: past this the cache counts as unavailable for that message. */
  timeout: duration("timeout", "250 millis")
}).pipe(Config.nested("redis"))
export type RedisConfig = Config.Success<typeof RedisConfig>

export const RabbitMqConfig = Config.all({
  url: secret("url", "amqp://guest:guest@127.0.0.1:5672"),
  exchange: string("exchange", "telegram.messages"),
  /** Publisher confirms awaited at once; more waits for a slot. */
  maxInFlight: positiveInt("maxInFlight", 1000),
  publishTimeout: duration("publishTimeout", "5 seconds"),
  /** AMQP heartbeat: a broker that stops answering is noticed within about twice this. */
  heartbeat: duration("heartbeat", "5 seconds"),
  /** The bus relay's pause between passes over committed events when it has caught up. */
  relayInterval: duration("relayInterval", "250 millis"),
  /** Committed events the relay reads per pass. */
  relayPageSize: positiveInt("relayPageSize", 2000),
  /** Upper bound of the reconnection backoff. */
  reconnectMaxDelay: duration("reconnectMaxDelay", "10 seconds")
}).pipe(Config.nested("rabbitmq"))
export type RabbitMqConfig = Config.Success<typeof RabbitMqConfig>

export const IngestConfig = Config.all({
  /** Flush a batch at this many rows... */
  batchSize: positiveInt("batchSize", 500),
  /** ...or this long after its first row, whichever comes first. */
  flushInterval: duration("flushInterval", "10 millis"),
  /** Events accepted but not yet committed; when full, the receiver waits. */
  queueCapacity: positiveInt("queueCapacity", 20_000),
  /** Batches written concurrently. */
  writers: positiveInt("writers", 2),
  /** On SIGTERM, how long to keep committing what is queued before giving up. */
  shutdownTimeout: duration("shutdownTimeout", "30 seconds"),
  /** On SIGTERM, how long cache and bus work already under way may take to finish. */
  tierTimeout: duration("tierTimeout", "2 seconds"),
  /**
   * Events waiting for cache work, and again events waiting for their bus
   * publish and its confirm: beyond the first they skip the hot path, beyond
   * the second they are cached but not published by it; the bus relay
   * publishes both.
   */
  hotPathCapacity: positiveInt("hotPathCapacity", 20_000),
  /** /health/ready reports the writer stalled when an accepted event has waited longer than this. */
  stallThreshold: duration("stallThreshold", "60 seconds")
}).pipe(Config.nested("ingest"))
export type IngestConfig = Config.Success<typeof IngestConfig>

export const HttpConfig = Config.all({
  /** Health and metrics of the daemon. */
  host: string("host", "127.0.0.1"),
  port: Config.Port("port").pipe(Config.withDefault(4007))
}).pipe(Config.nested("http"))
export type HttpConfig = Config.Success<typeof HttpConfig>

const logLevels = ["All", "Trace", "Debug", "Info", "Warn", "Error", "Fatal", "None"] as const

/** Accepts `debug`, `Debug` or `DEBUG`, as operators write it. */
const logLevel = Config.Literals(
  logLevels.flatMap((level) => [level, level.toLowerCase(), level.toUpperCase()]),
  "level"
).pipe(
  Config.map((value) => logLevels.find((level) => level.toLowerCase() === value.toLowerCase()) ?? "Info"),
  Config.withDefault("Info" as const)
)

export const LogConfig = Config.all({
  level: logLevel,
  /** `json` for journald, `pretty` for a terminal. */
  format: Config.Literals(["json", "pretty"], "format").pipe(Config.withDefault("json" as const))
}).pipe(Config.nested("log"))
export type LogConfig = Config.Success<typeof LogConfig>

export const OtelConfig = Config.all({
  /** OTLP/HTTP endpoint of a collector, e.g. http://127.0.0.1:4318; traces are off without it. */
  exporterOtlpEndpoint: Config.String("exporterOtlpEndpoint").pipe(Config.option),
  serviceName: string("serviceName", "telegram-gateway"),
  /**
   * Share of traces kept, decided where a trace begins (a message's receipt,
   * a background task): 1 keeps every one, 0.01 one in a hundred. A span that
   * links messages (a PostgreSQL batch) is kept when one of them is.
   */
  sampleRatio: Config.schema(Schema.Number.check(Schema.isBetween({ minimum: 0, maximum: 1 })), "sampleRatio").pipe(
    Config.withDefault(1)
  ),
  /** `http/protobuf` (smaller, the OTLP default) or `http/json`. */
  exporterOtlpProtocol: Config.Literals(["http/protobuf", "http/json"], "exporterOtlpProtocol").pipe(
    Config.withDefault("http/protobuf" as const)
  ),
  /** How often ended spans are sent (also when 1,000 are waiting, and at shutdown). */
  exportInterval: duration("exportInterval", "5 seconds")
}).pipe(Config.nested("otel"))
export type OtelConfig = Config.Success<typeof OtelConfig>

export const PgBouncerConfig = Config.all({
  /**
   * PgBouncer's admin console, read with `SHOW POOLS` (the user must be in
   * `stats_users`). Unset: `database.url` with the database `pgbouncer`.
   */
  adminUrl: Config.Redacted("adminUrl").pipe(Config.option),
  /** How often the pools are read; `0 seconds` turns the reading off (no PgBouncer in front). */
  pollInterval: Config.Duration("pollInterval").pipe(Config.withDefault(Duration.seconds(15))),
  /** Warn once when a pool's server connections in use exceed this share of its size, once more when back. */
  warnRatio: Config.schema(Schema.Number.check(Schema.isBetween({ minimum: 0, maximum: 1 })), "warnRatio").pipe(
    Config.withDefault(0.8)
  )
}).pipe(Config.nested("pgbouncer"))
export type PgBouncerConfig = Config.Success<typeof PgBouncerConfig>

/** One entry of `telegram.accounts`. */
export const TelegramAccount = Schema.Struct({
  /** Lower case letters, digits, `_` and `-`: the lease, metrics and `login --account` use it. */
  name: Schema.String.check(Schema.isPattern(/^[a-z0-9][a-z0-9_-]{0,62}$/)),
  sessionFile: Schema.String,
  channels: Schema.Array(Schema.String),
  dcId: Schema.optional(Schema.Int),
  dcAddress: Schema.optional(Schema.String),
  dcPort: Schema.optional(Schema.Int)
})
export type TelegramAccount = typeof TelegramAccount.Type

export const TelegramConfig = Config.all({
  /** From my.telegram.org; 0 means no account is configured. */
  apiId: Config.Int("apiId").pipe(Config.withDefault(0)),
  apiHash: secret("apiHash", ""),
  sessionFile: string("sessionFile", "/opt/telegram-gateway/.session/telegram.session"),
  /** @username, t.me link or numeric id of each chat to listen to. */
  channels: list("channels"),
  /**
   * The data centre to dial. Unset, the session file's own DC id and address
   * are used (and for a first login, DC 2 at 149.154.167.50). GramJS ignores
   * the session's port, so the port is always this one (443 by default).
   */
  dcId: Config.Int("dcId").pipe(Config.option),
  dcAddress: Config.String("dcAddress").pipe(Config.option),
  dcPort: Config.Port("dcPort").pipe(Config.withDefault(443)),
  /** Upper bound on connecting (GramJS can wait forever for its first answer). */
  connectTimeout: duration("connectTimeout", "15 seconds"),
  /** Upper bound on one call, on top of any FLOOD_WAIT slept inside it. */
  callTimeout: duration("callTimeout", "20 seconds"),
  /** FLOOD_WAITs up to this long are slept and the call retried; longer ones are scheduled. */
  floodSleepThreshold: duration("floodSleepThreshold", "30 seconds"),
  /** Reconnection backoff after a dropped connection: jittered, doubling from the first to the max. */
  reconnectBaseDelay: duration("reconnectBaseDelay", "1 second"),
  reconnectMaxDelay: duration("reconnectMaxDelay", "60 seconds"),
  /**
   * Each channel's getChannelDifference deadline: how often it is polled when
   * no push arrives (Telegram pushes big channels barely at all). The
   * server's `timeout` is a floor on it, and so is channels / `maxPollRate`.
   */
  pollInterval: duration("pollInterval", "5 seconds"),
  /** Upper bound on routine polls per second over all channels; gap recovery is not limited by it. */
  maxPollRate: positiveInt("maxPollRate", 20),
  /** On a gap, how long pushed updates may fill it before the difference is fetched (Telegram suggests 0.5 s). */
  gapHold: duration("gapHold", "500 millis"),
  /** getChannelDifference calls running at once (at start with many backlogged channels, or after a reconnect). */
  differenceConcurrency: positiveInt("differenceConcurrency", 8),
  /** Pushed updates waiting to be sequenced; beyond this they are dropped (counted) and recovered by a difference. */
  updateBuffer: positiveInt("updateBuffer", 10_000),
  /** Batches of events handed to ingestion but not yet taken; when full, the engine waits. */
  batchQueueCapacity: positiveInt("batchQueueCapacity", 1_000),
  /** After a too-long gap, the most recent stored messages re-read to find edits and deletions the gap swallowed. */
  rereadWindow: positiveInt("rereadWindow", 100),
  /** A channel not confirmed up to date for this long is stale: a warning, and /health/ready names it. */
  staleAfter: duration("staleAfter", "60 seconds"),
  /** How often the committed update state is written to PostgreSQL (and once more at shutdown). */
  stateFlushInterval: duration("stateFlushInterval", "1 second"),
  /** How often the account's owner looks for `telegram-gateway backfill` requests in PostgreSQL. */
  backfillPollInterval: duration("backfillPollInterval", "2 seconds"),
  /**
   * Several accounts, each with its own session file and chats (and, for
   * tests, its own DC address and port). Empty: one account named `default`
   * from `sessionFile` and `channels`. A JSON array in the file or in
   * TELEGRAM_ACCOUNTS.
   */
  accounts: Config.schema(Schema.Array(TelegramAccount), "accounts").pipe(
    Config.orElse(() => Config.schema(Schema.fromJsonString(Schema.Array(TelegramAccount)), "accounts")),
    Config.withDefault([] as ReadonlyArray<TelegramAccount>)
  )
}).pipe(Config.nested("telegram"))
export type TelegramConfig = Config.Success<typeof TelegramConfig>

/**
 * High availability (docs/operations.md, "Running two or more hosts"): each
 * account is leased to one process; the others stand by and take over when
 * the lease expires.
 */
export const HaConfig = Config.all({
  /** An owner that stops renewing loses its accounts this long after its last renewal. */
  leaseTtl: duration("leaseTtl", "10 seconds"),
  /** How often an owner renews its leases and heartbeat. */
  renewInterval: duration("renewInterval", "2 seconds"),
  /** How often a standby tries to take free accounts. */
  pollInterval: duration("pollInterval", "1 second"),
  /** How often a process checks that it holds no more than its share of the accounts. */
  rebalanceInterval: duration("rebalanceInterval", "5 seconds")
}).pipe(Config.nested("ha"))
export type HaConfig = Config.Success<typeof HaConfig>

/** Everything at once: `run` reads it first, so a bad key fails at start, not at first use. */
export const GatewayConfig = Config.all({
  database: DatabaseConfig,
  redis: RedisConfig,
  rabbitmq: RabbitMqConfig,
  ingest: IngestConfig,
  http: HttpConfig,
  log: LogConfig,
  otel: OtelConfig,
  pgbouncer: PgBouncerConfig,
  telegram: TelegramConfig,
  ha: HaConfig
})
export type GatewayConfig = Config.Success<typeof GatewayConfig>
