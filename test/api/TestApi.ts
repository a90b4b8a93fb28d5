/**
 * The API server for a test: a fresh migrated database reached through a
 * TcpProxy in front of PgBouncer, Redis through another proxy (both can be
 * cut), a unique Redis prefix and RabbitMQ exchange, four API keys, and a
 * real HTTP server on a random port (NodeHttpServer.layerTest).
 */
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { PgClient } from "@effect/sql-pg"
import { ConfigProvider, Context, Deferred, Effect, Fiber, Layer, Redacted } from "effect"
import { Reactivity } from "effect/reactivity"
import { FetchHttpClient, HttpClient, HttpClientRequest, HttpRouter, HttpServer } from "effect/http"
import { HttpApiClient } from "effect/http-api"
import { createHash } from "node:crypto"
import { GatewayApi } from "../../src/programs/api/Api.ts"
import * as Api from "../../src/main/Api.ts"
import * as Server from "../../src/programs/api/Server.ts"
import { applicationServer, makeTestDatabase, query, type TestDatabase, urlVia } from "../support/Database.ts"
import { removeLeftovers, uniqueName } from "../support/SharedNames.ts"
import { makeTcpProxy, type TcpProxy } from "../support/TcpProxy.ts"

const hash = (key: string) => createHash("sha256").update(key).digest("hex")

/**
 * The secrets the tests present; the server is configured with their hashes
 * only. The acker acts for consumers billing and c1.
 */
export const Keys = {
  reader: "reader-secret-0123456789",
  acker: "acker-secret-0123456789",
  admin: "admin-secret-0123456789",
  nobody: "nobody-secret-0123456789"
} as const

export class TestApi extends Context.Service<TestApi, {
  readonly database: TestDatabase
  readonly postgres: TcpProxy
  readonly redis: TcpProxy
  readonly keyPrefix: string
}>()("test/TestApi") {}

export const layerTestApi = (api: Record<string, unknown> = {}) =>
  Layer.unwrap(Effect.gen(function*() {
    const database = yield* makeTestDatabase("api")
    const postgres = yield* makeTcpProxy(applicationServer)
    const redis = yield* makeTcpProxy({ host: "127.0.0.1", port: 6379 })
    const keyPrefixName = uniqueName("tgapi")
    const keyPrefix = `${keyPrefixName}:`
    const exchange = uniqueName("tg_api_test")
    // Removed when the suite's layer closes (and again, as a no-op, after the file: test/support/RemoveLeftovers.ts).
    yield* Effect.addFinalizer(() => Effect.tryPromise(() => removeLeftovers([exchange, keyPrefixName])).pipe(Effect.ignore))
    const config = ConfigProvider.layer(ConfigProvider.fromUnknown({
      database: { url: Redacted.value(urlVia(database, `127.0.0.1:${postgres.port}`)), poolSize: 4, connectTimeout: "10 seconds" },
      redis: { url: `redis://127.0.0.1:${redis.port}/0`, keyPrefix },
      rabbitmq: { exchange, reconnectMaxDelay: "500 millis" },
      api: {
        keys: [
          { name: "reader", sha256: hash(Keys.reader), scopes: ["read"] },
          { name: "acker", sha256: hash(Keys.acker), scopes: ["ack"], consumers: ["billing", "c1"] },
          { name: "admin", sha256: hash(Keys.admin), scopes: ["admin"] },
          { name: "nobody", sha256: hash(Keys.nobody), scopes: [] }
        ],
        rateLimit: { perSecond: 10_000, burst: 10_000 },
        longPollInterval: "50 millis",
        maxBodyBytes: 4096,
        ...api
      }
    }))
    // As NodeHttpServer.layerTest, on the API's own Node server (Server.makeNodeServer).
    const nodeServer = yield* Server.makeNodeServer
    const httpServer = HttpServer.layerTestClient.pipe(
      Layer.provide(Layer.fresh(FetchHttpClient.layer).pipe(
        Layer.provide(Layer.succeed(FetchHttpClient.RequestInit)({ keepalive: false }))
      )),
      Layer.provideMerge(NodeHttpServer.layer(nodeServer, { port: 0 }))
    )
    const server = HttpRouter.serve(Server.Routes, { disableLogger: true }).pipe(
      Layer.provide(Api.tiers),
      Layer.provideMerge(httpServer),
      Layer.provide(config)
    )
    return Layer.merge(server, Layer.succeed(TestApi, TestApi.of({ database, postgres, redis, keyPrefix })))
  }))

/** The typed client, presenting `key` in X-API-Key (none when undefined). */
export const client = (key: string | undefined) =>
  HttpApiClient.make(GatewayApi, {
    transformClient: (http) =>
      key === undefined ? http : http.pipe(HttpClient.mapRequest(HttpClientRequest.setHeader("x-api-key", key)))
  })

export const sql = (statement: string) =>
  Effect.gen(function*() {
    const { database } = yield* TestApi
    return yield* query(database, statement)
  })

/** A message version row, inserted as the store would write it. */
export const insertMessage = (row: {
  readonly channelId: number
  readonly messageId: number
  readonly version?: number
  readonly text: string
  readonly textEscaped?: boolean
  readonly date?: string
  readonly deletedAt?: string
}) => {
  const version = row.version ?? 0
  const date = row.date ?? "2026-01-05T10:00:00Z"
  const editDate = version === 0 ? "NULL" : `to_timestamp(${version})`
  const text = row.text.replaceAll("'", "''")
  return sql(`
    INSERT INTO messages (channel_id, message_id, version, date, edit_date, sender_id, sender_kind, sender_name,
                          text, text_escaped, entities, raw, received_at, views, forwards, deleted_at)
    VALUES (${row.channelId}, ${row.messageId}, ${version}, '${date}', ${editDate}, 42, 'channel', 'Signals',
            '${text}', ${row.textEscaped === true}, '[]', '{"_":"message","id":${row.messageId}}',
            '${date}'::timestamptz + interval '1 second', 10, 0, ${row.deletedAt === undefined ? "NULL" : `'${row.deletedAt}'`})`)
}

export const insertChannel = (channelId: number, username: string) =>
  sql(`INSERT INTO channels (channel_id, username, title, kind) VALUES (${channelId}, '${username}', 'Title ${username}', 'channel')`)

export const insertDeletion = (channelId: number, messageId: number, deletedAt: string) =>
  sql(`
    WITH d AS (
      INSERT INTO message_deletions (channel_id, message_id, deleted_at, received_at)
      VALUES (${channelId}, ${messageId}, '${deletedAt}', '${deletedAt}') RETURNING 1)
    UPDATE messages SET deleted_at = '${deletedAt}' WHERE channel_id = ${channelId} AND message_id = ${messageId}`)

/** Runs `statement` in a transaction left open until `commit`, on its own direct connection. */
export const openTransaction = (database: TestDatabase, statement: string) =>
  Effect.gen(function*() {
    const ran = yield* Deferred.make<void>()
    const release = yield* Deferred.make<void>()
    const done = yield* PgClient.makeClient({ url: database.migrationUrl, prepare: false }).pipe(
      Effect.flatMap((sql) =>
        sql.withTransaction(
          sql.unsafe(statement).pipe(Effect.andThen(Deferred.succeed(ran, undefined)), Effect.andThen(Deferred.await(release)))
        )
      ),
      Effect.provide(Reactivity.layer),
      Effect.scoped,
      Effect.orDie,
      Effect.forkChild
    )
    yield* Deferred.await(ran)
    return { commit: Deferred.succeed(release, undefined).pipe(Effect.andThen(Fiber.join(done))) }
  })
