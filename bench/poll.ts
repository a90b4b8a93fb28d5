/**
 * What one API poll statement costs by where its cursor is and how many days
 * the table keeps (not a test): `npm run bench:poll -- [--days 12,90]
 * [--backends postgresql,timescaledb] [--messages 1000000] [--seconds 8]
 * [--rounds 2]`.
 *
 * Per backend and number of days: a database of its own loaded as
 * bench/api.ts loads its (bench/ApiDataset.ts: a partition or chunk a day, on
 * TimescaleDB every chunk older than a day compressed), then the poll's
 * statement (`api_event_pages_json`, as src/layers/PgMessageQuery.ts runs
 * it) from one connection straight to PostgreSQL, one statement at a time,
 * for `--seconds` per case:
 *
 * - at the head: a channel (page of 10), every channel (page of 1,000, the
 *   long-poll watcher's);
 * - near the head: a channel 1,000 events back, every channel 100 back;
 * - in history: a random cursor and a random channel (page of 10, as
 *   bench:api's consumers read), every channel (page of 100).
 *
 * The load is one statement, so on TimescaleDB its row trigger marks every
 * day with the statement's last value (sql/0058) and every cursor below it
 * would read every day; the marks are then set to each day's highest
 * `event_seq`, as the writer's batches leave them. On plain PostgreSQL the
 * statement trigger already writes those. Prints a table of mean, p50 and
 * p95 in ms, then one JSON line.
 */
import { PgClient } from "@effect/sql-pg"
import { Effect } from "effect"
import { Reactivity } from "effect/reactivity"
import * as Os from "node:os"
import { parseArgs } from "node:util"
import { makeTestDatabase, query, type TestDatabase, timescaleCluster } from "../test/support/Database.ts"
import { firstChannelId, loadApiDataset } from "./ApiDataset.ts"
import { percentile, table } from "./Stats.ts"

const { values: args } = parseArgs({
  options: {
    days: { type: "string", default: "12,90" },
    backends: { type: "string", default: "postgresql,timescaledb" },
    messages: { type: "string", default: "1000000" },
    seconds: { type: "string", default: "8" },
    rounds: { type: "string", default: "2" }
  }
})
const dayCounts = args.days.split(",").map(Number)
const backends = args.backends.split(",")
for (const backend of backends) {
  if (backend !== "postgresql" && backend !== "timescaledb") {
    throw new Error(`--backends: "${backend}" is neither postgresql nor timescaledb`)
  }
}
const messages = Number(args.messages)
const seconds = Number(args.seconds)
const rounds = Number(args.rounds)
const channels = 100

const random = (below: number) => Math.floor(Math.random() * below)

/** The poll's statement for one request. */
const poll = (after: number, channel: number | null, limit: number) =>
  `SELECT count(*) FROM api_event_pages_json(ARRAY[${after}]::bigint[],
    ${channel === null ? "NULL" : `ARRAY[${channel}]::bigint[]`}, ARRAY[${limit}]::int[], 0)`

/** Each case's statement, with fresh parameters per run; `head` is the last event loaded. */
const cases: ReadonlyArray<readonly [string, (head: number) => string]> = [
  ["a channel at the head", (head) => poll(head, firstChannelId + 5, 10)],
  ["every channel at the head", (head) => poll(head, null, 1000)],
  ["a channel near the head", (head) => poll(head - 1000, firstChannelId + 5, 10)],
  ["every channel near the head", (head) => poll(head - 100, null, 1000)],
  ["a channel in history", (head) => poll(1 + random(Math.max(1, head - 10_000)), firstChannelId + random(channels), 10)],
  ["every channel in history", (head) => poll(1 + random(Math.max(1, head - 10_000)), null, 100)]
]

const loadAverage = () => Os.loadavg().map((load) => load.toFixed(2)).join(" ")

const measure = (database: TestDatabase, statement: () => string) =>
  Effect.gen(function*() {
    const sql = yield* PgClient.makeClient({ url: database.migrationUrl, prepare: false })
    const samples: Array<number> = []
    const until = performance.now() + seconds * 1000
    while (performance.now() < until) {
      const started = performance.now()
      yield* sql.unsafe(statement())
      samples.push(performance.now() - started)
    }
    const mean = samples.reduce((sum, sample) => sum + sample, 0) / samples.length
    return { n: samples.length, mean: Math.round(mean * 1000) / 1000, p50: percentile(samples, 50), p95: percentile(samples, 95) }
  }).pipe(Effect.scoped, Effect.provide(Reactivity.layer))

const program = Effect.gen(function*() {
  const results: Array<Record<string, unknown>> = []
  for (const backend of backends) {
    const timescale = backend === "timescaledb"
    for (const days of dayCounts) {
      const database = yield* makeTestDatabase(`bench_poll_${days}`, timescale ? { cluster: timescaleCluster } : {})
      yield* loadApiDataset(database, { messages, channels, days, timescale })
      if (timescale) {
        yield* query(database, "DELETE FROM message_seq_days")
        yield* query(database, `
          INSERT INTO message_seq_days (day, backend, max_seq)
          SELECT (date AT TIME ZONE 'UTC')::date, 0, max(event_seq) FROM messages GROUP BY 1`)
        yield* query(database, "VACUUM ANALYZE message_seq_days")
      }
      const [last] = yield* query<{ seq: string }>(database, "SELECT max(event_seq)::text AS seq FROM messages")
      const head = Number(last?.seq ?? 0)
      for (let round = 1; round <= rounds; round++) {
        const load = loadAverage()
        for (const [name, statement] of cases) {
          const figures = yield* measure(database, () => statement(head))
          results.push({ backend, days, round, load, case: name, ...figures })
          console.error(`${backend} ${days} days, round ${round} (load ${load}): ${name}: ${JSON.stringify(figures)}`)
        }
      }
    }
  }
  console.log(`${messages.toLocaleString("en")} messages over ${channels} channels; ${seconds} s per case, one statement at a time; ms`)
  console.log(table(
    ["backend", "days", "round", "case", "n", "mean", "p50", "p95"],
    results.map((r) => [r.backend, r.days, r.round, r.case, r.n, r.mean, r.p50, r.p95])
  ))
  console.log(JSON.stringify({ bench: "poll", messages, channels, seconds, rounds, cpus: Os.cpus().length, results }))
})

Effect.runPromise(Effect.scoped(program)).then(() => process.exit(0), (error) => {
  console.error(error)
  process.exit(1)
})
