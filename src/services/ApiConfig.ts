/**
 * The consumer API's configuration (`telegram-gateway-api`), in the same
 * shape as GatewayConfig: keys are paths under `api.`, constant case in the
 * environment (`api.rateLimit.perSecond` = `API_RATE_LIMIT_PER_SECOND`).
 *
 * API keys are configured as SHA-256 hashes, never as the keys themselves:
 * `API_KEYS="reporting:<sha256hex>:read,worker:<sha256hex>:read+ack"`, or in
 * the JSON file a list of `{ "name", "sha256", "scopes" }`. Make a key with
 * `openssl rand -hex 32` and hash it with `printf %s "$KEY" | sha256sum`.
 */
import { Config, ConfigProvider, Duration, Effect, Schema } from "effect"

export const ApiScope = Schema.Literals(["read", "ack", "admin"])
export type ApiScope = typeof ApiScope.Type

/** A configured key: who it is, the SHA-256 of its secret, what it may do. */
export class ApiKeyEntry extends Schema.Class<ApiKeyEntry>("ApiKeyEntry")({
  name: Schema.String.check(Schema.isPattern(/^[A-Za-z0-9_.-]{1,64}$/)),
  sha256: Schema.String.check(Schema.isPattern(/^[0-9a-f]{64}$/)),
  scopes: Schema.Array(ApiScope)
}) {}

const invalidKeys = (message: string) =>
  Effect.fail(new Config.ConfigError(new ConfigProvider.SourceError({ message: `api.keys: ${message}` })))

/** `name:sha256hex:scope+scope` entries separated by commas. */
export const parseApiKeys = (value: string): Effect.Effect<ReadonlyArray<ApiKeyEntry>, Config.ConfigError> =>
  Effect.forEach(value.split(",").map((item) => item.trim()).filter((item) => item.length > 0), (item) => {
    const [name, sha256, scopes, ...rest] = item.split(":")
    if (name === undefined || sha256 === undefined || scopes === undefined || rest.length > 0) {
      return invalidKeys(`"${name ?? ""}..." is not name:sha256hex:scope1+scope2`)
    }
    return Schema.decodeUnknownEffect(ApiKeyEntry)({ name, sha256: sha256.toLowerCase(), scopes: scopes.split("+") }).pipe(
      Effect.catch(() =>
        invalidKeys(`key "${name}" needs a name of [A-Za-z0-9_.-], a 64-digit hex SHA-256 and scopes among read, ack, admin`)
      )
    )
  })

const keys = Config.Array(ApiKeyEntry, "keys").pipe(
  Config.orElse(() => Config.String("keys").pipe(Config.mapEffect(parseApiKeys))),
  Config.withDefault([] as ReadonlyArray<ApiKeyEntry>)
)

const positiveInt = (name: string, fallback: number) =>
  Config.schema(Schema.Int.check(Schema.isGreaterThan(0)), name).pipe(Config.withDefault(fallback))

const duration = (name: string, fallback: Duration.Input) =>
  Config.Duration(name).pipe(Config.withDefault(Duration.fromInputUnsafe(fallback)))

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
  /** Upper bound of `wait` on a long poll. */
  longPollMaxWait: duration("longPollMaxWait", "30 seconds"),
  /** How often a long poll looks again while it waits. */
  longPollInterval: duration("longPollInterval", "100 millis"),
  /** Largest `limit` a request may ask for; `defaultLimit` when it asks none. */
  maxLimit: positiveInt("maxLimit", 1000),
  defaultLimit: positiveInt("defaultLimit", 100),
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
