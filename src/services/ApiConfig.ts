/**
 * The consumer API's configuration (`telegram-gateway-api`), in the same
 * shape as GatewayConfig: keys are paths under `api.`, constant case in the
 * environment (`api.rateLimit.perSecond` = `API_RATE_LIMIT_PER_SECOND`).
 *
 * API keys are configured as SHA-256 hashes, never as the keys themselves:
 * `API_KEYS="reporting:<sha256hex>:read,worker:<sha256hex>:read+ack:billing+audit"`,
 * or in the JSON file a list of `{ "name", "sha256", "scopes", "consumers"? }`. Make a key with
 * `openssl rand -hex 32` and hash it with `printf %s "$KEY" | sha256sum`.
 */
import { Config, ConfigProvider, Duration, Effect, Schema } from "effect"

export const ApiScope = Schema.Literals(["read", "ack", "admin"])
export type ApiScope = typeof ApiScope.Type

const Name = Schema.String.check(Schema.isPattern(/^[A-Za-z0-9_.-]{1,64}$/))

/**
 * A configured key: who it is, the SHA-256 of its secret, what it may do, and
 * which consumers' checkpoints and marks it may read and change (its own name
 * when absent; an admin key may change any).
 */
export class ApiKeyEntry extends Schema.Class<ApiKeyEntry>("ApiKeyEntry")({
  name: Name,
  sha256: Schema.String.check(Schema.isPattern(/^[0-9a-f]{64}$/)),
  scopes: Schema.Array(ApiScope),
  consumers: Schema.optional(Schema.Array(Name))
}) {}

/** The consumers `entry` may act for, admin aside. */
export const consumersOf = (entry: ApiKeyEntry): ReadonlyArray<string> => entry.consumers ?? [entry.name]

/**
 * Names the entry by position only: a value put in the wrong place may be a
 * secret (a raw key instead of its hash), so no part of it is ever echoed.
 */
const invalidEntry = (position: number) =>
  Effect.fail(
    new Config.ConfigError(
      new ConfigProvider.SourceError({
        message: `api.keys: entry ${position} is not name:sha256hex:scope1+scope2[:consumer1+consumer2] ` +
          `(a name and consumers of [A-Za-z0-9_.-], the 64-digit hex SHA-256 of the key, never the key itself, ` +
          `and scopes among read, ack, admin); its content is not shown, it may hold a secret`
      })
    )
  )

const decodeEntry = (value: unknown, position: number) =>
  Schema.decodeUnknownEffect(ApiKeyEntry)(value).pipe(Effect.catch(() => invalidEntry(position)))

/** `name:sha256hex:scope+scope[:consumer+consumer]`, the string form of one entry. */
const parseEntry = (item: string, position: number) => {
  const [name, sha256, scopes, consumers, ...rest] = item.split(":")
  if (name === undefined || sha256 === undefined || scopes === undefined || rest.length > 0) return invalidEntry(position)
  return decodeEntry({
    name,
    sha256: sha256.toLowerCase(),
    scopes: scopes.split("+"),
    ...(consumers === undefined ? {} : { consumers: consumers.split("+") })
  }, position)
}

/**
 * Entries separated by commas, or a list of entries (objects, or strings in
 * the string form), numbered from 1 in the order given.
 */
export const parseApiKeys = (values: string | ReadonlyArray<unknown>): Effect.Effect<ReadonlyArray<ApiKeyEntry>, Config.ConfigError> => {
  const items = (typeof values === "string" ? [values] : values).flatMap((value) =>
    typeof value === "string" ? value.split(",").map((item) => item.trim()).filter((item) => item.length > 0) : [value]
  )
  return Effect.forEach(items, (item, index) => typeof item === "string" ? parseEntry(item, index + 1) : decodeEntry(item, index + 1))
}

/**
 * The JSON form, loosely: every field a string (or strings), so that a wrong
 * value fails in decodeEntry, whose message shows no part of it.
 */
const LooseEntry = Schema.Struct({
  name: Schema.optional(Schema.String),
  sha256: Schema.optional(Schema.String),
  scopes: Schema.optional(Schema.Array(Schema.String)),
  consumers: Schema.optional(Schema.Array(Schema.String))
})

const keys = Config.schema(Schema.Array(LooseEntry), "keys").pipe(
  Config.orElse(() => Config.String("keys")),
  Config.withDefault([] as ReadonlyArray<typeof LooseEntry.Type>),
  Config.mapEffect(parseApiKeys)
)

const positiveInt = (name: string, fallback: number) =>
  Config.schema(Schema.Int.check(Schema.isGreaterThan(0)), name).pipe(Config.withDefault(fallback))

const duration = (name: string, fallback: Duration.Input) =>
  Config.Duration(name).pipe(Config.withDefault(Duration.fromInputUnsafe(fallback)))

/** A budget duration of at least a millisecond (a budget of none would refuse every search). */
const budgetDuration = (name: string, fallback: Duration.Input) =>
  duration(name, fallback).pipe(Config.mapEffect((value) =>
    Duration.toMillis(value) >= 1 ? Effect.succeed(value) : Effect.fail(
      new Config.ConfigError(new ConfigProvider.SourceError({ message: `api.expensive.budget.${name} must be at least 1 millisecond` }))
    )
  ))

export const ApiConfig = Config.all({
  host: Config.String("host").pipe(Config.withDefault("127.0.0.1")),
  port: Config.Port("port").pipe(Config.withDefault(4010)),
  keys,
  rateLimit: Config.all({
    /** Tokens added per second to each key's bucket... */
    perSecond: positiveInt("perSecond", 200),
    /** ...up to this many, the burst a key may spend at once. */
    burst: positiveInt("burst", 400)
  }).pipe(Config.nested("rateLimit")),
  /** The same, per client address, for the endpoints without a key (health, metrics, docs). */
  publicRateLimit: Config.all({
    perSecond: positiveInt("perSecond", 20),
    burst: positiveInt("burst", 40)
  }).pipe(Config.nested("publicRateLimit")),
  /** Searches and counts: their cost depends on the data, so they are bounded apart. */
  expensive: Config.all({
    /** At most this many at a time per key (429 past it)... */
    perKey: positiveInt("perKey", 1),
    /** ...and over all keys (503 past it), leaving the pool to polls, marks and checkpoints. */
    total: positiveInt("total", 2),
    /** Each one's statement timeout (503 `query_timeout` past it). */
    statementTimeout: duration("statementTimeout", "2 seconds"),
    /**
     * Each key's query time: a search or count runs only while the key has
     * some left (429 with the wait in `Retry-After` past it), and is charged
     * the time it took. The key earns `perSecond` of it each second, up to
     * `burst`. The defaults hold one key's searches to a twentieth of a
     * database core on average and half a second ahead: on two cores, a
     * fifth of a core and 4 s ahead let a flooding key push another key's
     * poll p95 past 10 ms (docs/benchmarks.md, issue 12's isolation).
     */
    budget: Config.all({
      perSecond: budgetDuration("perSecond", "50 millis"),
      burst: budgetDuration("burst", "500 millis")
    }).pipe(Config.nested("budget")),
    /**
     * A search or count refused for its own key's limits (`perKey`, `budget`)
     * is answered after this long (at most its `Retry-After`): a client that
     * asks again at once is slowed to one refusal per this much per
     * connection, instead of costing the server a refusal as fast as it can
     * send. 0 answers at once.
     */
    refusalDelay: duration("refusalDelay", "1 second"),
    /**
     * A search ranks only the newest this many matches (by message date),
     * found newest first, so its cost is bounded whatever the words match.
     */
    searchMatches: positiveInt("searchMatches", 1000)
  }).pipe(Config.nested("expensive")),
  /** Upper bound of `wait` on a long poll. */
  longPollMaxWait: duration("longPollMaxWait", "30 seconds"),
  /**
   * How often the one watcher shared by every waiting long poll looks for new
   * commits; only the polls of the channels it saw change query again.
   */
  longPollInterval: duration("longPollInterval", "100 millis"),
  /** Largest `limit` a request may ask for; `defaultLimit` when it asks none. */
  maxLimit: positiveInt("maxLimit", 1000),
  defaultLimit: positiveInt("defaultLimit", 100),
  /** Processed marks one consumer may hold; a mark request past it is refused (409). */
  maxMarksPerConsumer: positiveInt("maxMarksPerConsumer", 1_000_000),
  /** Request bodies above this are refused with 413 before they are read. */
  maxBodyBytes: positiveInt("maxBodyBytes", 65_536),
  /**
   * An event whose writing transaction is still younger than the oldest
   * transaction in flight is held back (see PgMessageQuery); past this age it
   * is released anyway, so one stuck session cannot stall every consumer.
   */
  eventSettleLimit: duration("eventSettleLimit", "30 seconds")
}).pipe(Config.nested("api"))
export type ApiConfig = Config.Success<typeof ApiConfig>
