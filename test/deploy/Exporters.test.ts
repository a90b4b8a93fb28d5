/**
 * deploy/exporters/: the postgres-exporter custom queries run on a migrated
 * database and return every column they declare as a number; each exporter's
 * settings agree with the service it reads (PgBouncer's port 6434, Redis's
 * master) and with the Prometheus job that scrapes it; RabbitMQ's config
 * serves AMQP and the Prometheus endpoint where the gateway and Prometheus
 * look for them.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Fs from "node:fs/promises"
import { makeTestDatabase, query } from "../support/Database.ts"
import { deployPath } from "./Tools.ts"

const read = (...parts: ReadonlyArray<string>) => Effect.promise(() => Fs.readFile(deployPath(...parts), "utf8"))

interface CustomQuery {
  readonly query: string
  readonly metrics: ReadonlyArray<Record<string, { readonly usage: string; readonly description: string }>>
}

/** The queries file: YAML in its JSON form after the comment header. */
const customQueries = read("exporters", "postgres-exporter-queries.yml").pipe(
  Effect.map((text) =>
    JSON.parse(text.split("\n").filter((line) => !line.startsWith("#")).join("\n")) as Record<string, CustomQuery>
  )
)

/** `host:port` of the one target of a job in prometheus.yml. */
const jobTarget = (job: string) =>
  read("prometheus", "prometheus.yml").pipe(
    Effect.map((text) => {
      const match = new RegExp(`job_name: ${job}\\n\\s+static_configs:\\n\\s+- targets: \\["([^"]+)"\\]`).exec(text)
      assert.isNotNull(match, `job ${job} in prometheus.yml`)
      return match![1]!
    })
  )

const setting = (text: string, pattern: RegExp) => {
  const match = pattern.exec(text)
  assert.isNotNull(match, `${pattern} in\n${text}`)
  return match![1]!
}

describe("exporter configuration", () => {
  it.effect("postgres-exporter's custom queries run on the schema and return every declared column as a number", () =>
    Effect.gen(function*() {
      const queries = yield* customQueries
      assert.isAtLeast(Object.keys(queries).length, 5)
      const database = yield* makeTestDatabase("exporter")
      for (const [name, custom] of Object.entries(queries)) {
        assert.match(name, /^telegram_[a-z_]+$/)
        const rows = yield* query<Record<string, unknown>>(database, custom.query).pipe(Effect.orDie)
        assert.isAtLeast(rows.length, 1, name)
        for (const metric of custom.metrics) {
          for (const [column, meta] of Object.entries(metric)) {
            assert.oneOf(meta.usage, ["GAUGE", "COUNTER"], `${name}.${column}`)
            assert.isNotEmpty(meta.description)
            const value = rows[0]![column]
            assert.isTrue(typeof value === "number" && Number.isFinite(value), `${name}.${column} = ${String(value)}`)
          }
        }
      }
    }).pipe(Effect.scoped))

  it.effect("postgres-exporter loads those queries and listens where Prometheus scrapes it", () =>
    Effect.gen(function*() {
      const text = yield* read("exporters", "prometheus-postgres-exporter.default")
      assert.strictEqual(setting(text, /--extend\.query-path=\S*\/([^/\s']+)/), "postgres-exporter-queries.yml")
      assert.strictEqual(setting(text, /--web\.listen-address=(\S+?)['\s]/), yield* jobTarget("postgres"))
      assert.strictEqual(setting(text, /DATA_SOURCE_NAME='postgresql:\/\/[^@]+@[^:]+:(\d+)\//), "5432")
    }))

  it.effect("the PgBouncer exporter's drop-in points it at the project's PgBouncer on 6434 as a stats user", () =>
    Effect.gen(function*() {
      const text = yield* read("exporters", "prometheus-pgbouncer-exporter.service.d", "telegram-gateway.conf")
      const ini = yield* read("pgbouncer", "pgbouncer.ini")
      const port = setting(ini, /^listen_port = (\d+)$/m)
      assert.strictEqual(port, "6434")
      assert.strictEqual(setting(text, /^Environment=PGBOUNCER_PORT=(\d+)$/m), port)
      assert.strictEqual(setting(text, /^Environment=PGBOUNCER_HOST=(\S+)$/m), setting(ini, /^listen_addr = (\S+)$/m))
      assert.include(setting(ini, /^stats_users = (.*)$/m).split(/,\s*/), setting(text, /^Environment=PGBOUNCER_USER=(\S+)$/m))
    }))

  it.effect("the Redis exporter reads the master of deploy/redis and listens where Prometheus scrapes it", () =>
    Effect.gen(function*() {
      const text = yield* read("exporters", "prometheus-redis-exporter.default")
      const master = yield* read("redis", "master.conf")
      assert.strictEqual(setting(text, /-redis\.addr=redis:\/\/[^:]+:(\d+)/), setting(master, /^port (\d+)$/m))
      assert.strictEqual(setting(text, /-web\.listen-address=(\S+?)['\s]/), yield* jobTarget("redis"))
    }))

  it.effect("rabbitmq.conf listens where RABBITMQ_URL and the rabbitmq job expect, with the Prometheus plugin enabled", () =>
    Effect.gen(function*() {
      const text = yield* read("rabbitmq", "rabbitmq.conf")
      const plugins = yield* read("rabbitmq", "enabled_plugins")
      assert.include(plugins, "rabbitmq_prometheus")
      const prometheus = `${setting(text, /^prometheus\.tcp\.ip = (\S+)$/m)}:${setting(text, /^prometheus\.tcp\.port = (\d+)$/m)}`
      assert.strictEqual(prometheus, yield* jobTarget("rabbitmq"))
      const env = yield* Effect.promise(() => Fs.readFile(deployPath("..", ".env.example"), "utf8"))
      const url = new URL(setting(env, /^# RABBITMQ_URL=(\S+)$/m))
      assert.strictEqual(setting(text, /^listeners\.tcp\.local = (\S+)$/m), `${url.hostname}:${url.port || "5672"}`)
    }))
})
