/**
 * `PoolStats` from PgBouncer's admin console. The console speaks only the
 * simple query protocol, one statement per query, which the application's
 * driver does not send, so this reads it with @effect/sql-pg's own wire codec
 * and SCRAM client: one short connection per reading (startup,
 * authentication, `SHOW POOLS`, `SHOW DATABASES`, `SHOW CONFIG`, terminate), bounded by
 * `database.connectTimeout`.
 */
import * as PgAuth from "@effect/sql-pg/PgAuth"
import * as PgProtocol from "@effect/sql-pg/PgProtocol"
import { Duration, Effect, Layer, Option, Redacted, Result } from "effect"
import { randomBytes } from "node:crypto"
import * as Net from "node:net"
import { DatabaseConfig, PgBouncerConfig } from "../services/GatewayConfig.ts"
import { PoolStats, PoolStatsUnavailable, type PoolUsage } from "../services/PoolStats.ts"

type Row = Record<string, string | null>

/** A simple-protocol query message: 'Q', length, the text, NUL. */
const encodeQuery = (text: string): Uint8Array => {
  const body = Buffer.from(`${text}\0`, "utf8")
  const message = Buffer.alloc(5 + body.length)
  message.write("Q", 0, "latin1")
  message.writeInt32BE(4 + body.length, 1)
  body.copy(message, 5)
  return message
}

/** Runs each statement (the console takes one per query) in turn; each result set as rows of text. */
const query = (url: URL, password: string, statements: ReadonlyArray<string>, timeout: Duration.Duration) =>
  Effect.callback<ReadonlyArray<ReadonlyArray<Row>>, PoolStatsUnavailable>((resume) => {
    const decoder = new TextDecoder()
    const parser = PgProtocol.makeParser()
    const results: Array<Array<Row>> = []
    let columns: ReadonlyArray<string> = []
    let scram: PgAuth.ScramState | undefined
    let done = false
    let sent = 0
    const socket = Net.connect({ host: url.hostname, port: Number(url.port || 5432) })
    const finish = (outcome: Effect.Effect<ReadonlyArray<ReadonlyArray<Row>>, PoolStatsUnavailable>) => {
      if (done) return
      done = true
      socket.end(PgProtocol.encodeTerminate())
      socket.destroy()
      resume(outcome)
    }
    const fail = (detail: string) => finish(Effect.fail(new PoolStatsUnavailable({ detail: `${url.host}: ${detail}` })))
    socket.setTimeout(Duration.toMillis(timeout), () => fail(`no answer within ${Duration.format(timeout)}`))
    socket.once("error", (error) => fail(error.message))
    socket.once("close", () => fail("connection closed"))
    socket.once("connect", () =>
      socket.write(PgProtocol.encodeStartupMessage({
        user: decodeURIComponent(url.username),
        database: "pgbouncer",
        application_name: "telegram-gateway-pool-stats"
      })))
    socket.on("data", (chunk) => {
      if (done) return
      try {
        for (const message of parser.push(chunk)) {
          switch (message._tag) {
            case "AuthenticationCleartextPassword":
              socket.write(PgProtocol.encodePasswordMessage({ password }))
              break
            case "AuthenticationMD5Password": {
              const hashed = PgAuth.md5Password({ user: decodeURIComponent(url.username), password, salt: message.salt })
              if (Result.isFailure(hashed)) return fail(hashed.failure.message)
              socket.write(PgProtocol.encodePasswordMessage({ password: hashed.success }))
              break
            }
            case "AuthenticationSASL": {
              const init = PgAuth.scramInit({ password, nonce: randomBytes(18).toString("base64") })
              if (Result.isFailure(init)) return fail(init.failure.message)
              scram = init.success.state
              socket.write(PgProtocol.encodeSASLInitialResponse({ mechanism: PgAuth.SCRAM_SHA_256, initialResponse: init.success.response }))
              break
            }
            case "AuthenticationSASLContinue": {
              if (scram?._tag !== "ScramFirst") return fail("unexpected SCRAM challenge")
              const next = PgAuth.scramContinue(scram, message.data)
              if (Result.isFailure(next)) return fail(next.failure.message)
              scram = next.success.state
              socket.write(PgProtocol.encodeSASLResponse({ data: next.success.response }))
              break
            }
            case "AuthenticationSASLFinal": {
              if (scram?._tag !== "ScramFinal") return fail("unexpected SCRAM final message")
              const verified = PgAuth.scramFinish(scram, message.data)
              if (Result.isFailure(verified)) return fail(verified.failure.message)
              break
            }
            case "AuthenticationUnsupported":
              return fail(`unsupported authentication method ${message.method}`)
            case "ErrorResponse":
              return fail(message.fields.message ?? "error")
            case "RowDescription":
              columns = message.fields.map((field) => field.name)
              results.push([])
              break
            case "DataRow": {
              const row: Row = {}
              message.values.forEach((value, index) => {
                row[columns[index] ?? String(index)] = value === null ? null : decoder.decode(value)
              })
              results[results.length - 1]?.push(row)
              break
            }
            case "ReadyForQuery":
              // The first one (after authentication) invites the first statement; each next one the following.
              if (sent < statements.length) {
                columns = []
                socket.write(encodeQuery(statements[sent++]!))
              } else {
                finish(Effect.succeed(results))
              }
              break
            default:
              break
          }
        }
      } catch (error) {
        fail(error instanceof Error ? error.message : String(error))
      }
    })
    return Effect.sync(() => {
      done = true
      socket.destroy()
    })
  })

const int = (row: Row, column: string) => Number(row[column] ?? 0)

/**
 * SHOW POOLS rows with each database's pool size: its own from SHOW DATABASES,
 * or `default_pool_size` from SHOW CONFIG for a database PgBouncer made from
 * its `*` entry. The console's own pool is left out.
 */
export const toUsage = (
  pools: ReadonlyArray<Row>,
  databases: ReadonlyArray<Row>,
  settings: ReadonlyArray<Row>
): ReadonlyArray<PoolUsage> => {
  const defaultSize = Number(settings.find((row) => row["key"] === "default_pool_size")?.["value"] ?? 0)
  const sizes = new Map(databases.map((row) => [row["name"] ?? "", int(row, "pool_size")]))
  return pools.filter((row) => row["database"] !== "pgbouncer").map((row) => ({
    database: row["database"] ?? "",
    user: row["user"] ?? "",
    clActive: int(row, "cl_active"),
    clWaiting: int(row, "cl_waiting"),
    svActive: int(row, "sv_active"),
    svIdle: int(row, "sv_idle"),
    svUsed: int(row, "sv_used"),
    svTested: int(row, "sv_tested"),
    svLogin: int(row, "sv_login"),
    maxWaitSeconds: int(row, "maxwait") + int(row, "maxwait_us") / 1e6,
    poolSize: sizes.get(row["database"] ?? "") || defaultSize
  }))
}

export const layer = Layer.effect(
  PoolStats,
  Effect.gen(function*() {
    const database = yield* DatabaseConfig
    const config = yield* PgBouncerConfig
    const url = new URL(Redacted.value(Option.getOrElse(config.adminUrl, () => database.url)))
    const password = decodeURIComponent(url.password)
    return PoolStats.of({
      pools: query(url, password, ["SHOW POOLS", "SHOW DATABASES", "SHOW CONFIG"], database.connectTimeout).pipe(
        Effect.map(([pools = [], databases = [], settings = []]) => toUsage(pools, databases, settings))
      )
    })
  })
)
