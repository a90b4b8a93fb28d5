/**
 * `npx tsx bench/database.ts [--sizes 1000000,10000000] [--runs 200]`: the
 * database layer at a million and ten million messages, on a database of its
 * own (dropped at the end). Per size: the insert rate of one generated
 * INSERT ... SELECT (all indexes maintained, partitions routed), then p50/p95
 * of the API's queries with varied parameters: polling one channel after a
 * cursor, one channel's statistics over two hours, and ranked full-text
 * search. A table, then one JSON line of the figures.
 */
import { PgClient } from "@effect/sql-pg"
import { Effect } from "effect"
import { Reactivity } from "effect/reactivity"
import { parseArgs } from "node:util"
import { makeTestDatabase, type TestDatabase } from "../test/support/Database.ts"
import { generateMessages } from "../test/database/Generate.ts"
import { percentile, table } from "./Stats.ts"

const { values: args } = parseArgs({
  options: { sizes: { type: "string", default: "1000000,10000000" }, runs: { type: "string", default: "200" } }
})
const sizes = args.sizes.split(",").map(Number)
const runs = Number(args.runs)

const random = (below: number) => Math.floor(Math.random() * below)

/** The API's queries, each with fresh parameters per run (`rows` is the table's size). */
const queries: ReadonlyArray<readonly [string, (rows: number) => string]> = [
  [
    "poll after cursor",
    (rows) => `SELECT * FROM messages WHERE channel_id = ${random(100) + 1} AND event_seq > ${random(rows)}
               ORDER BY event_seq LIMIT 100`
  ],
  [
    "channel stats 2h",
    () => `SELECT * FROM channel_statistics(${random(100) + 1}, date_trunc('day', now()) + interval '${random(150)} hours',
                                           date_trunc('day', now()) + interval '${random(150) + 2} hours')`
  ],
  ["search", () => `SELECT * FROM search_messages('ticker${random(5000)} alvo', 50)`]
]

const timed = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    const started = performance.now()
    yield* effect
    return performance.now() - started
  })

const measureSize = (rows: number) =>
  Effect.gen(function*() {
    const database: TestDatabase = yield* makeTestDatabase("bench_database")
    const sql = yield* PgClient.makeClient({ url: database.migrationUrl, prepare: false }).pipe(Effect.provide(Reactivity.layer))
    const insertMs = yield* timed(sql.unsafe(generateMessages(1, rows)))
    yield* sql.unsafe("VACUUM ANALYZE messages")
    const results: Record<string, { p50: number; p95: number }> = {}
    for (const [name, statement] of queries) {
      for (let warm = 0; warm < 10; warm++) yield* sql.unsafe(statement(rows))
      const samples: Array<number> = []
      for (let run = 0; run < runs; run++) samples.push(yield* timed(sql.unsafe(statement(rows))))
      results[name] = { p50: percentile(samples, 50), p95: percentile(samples, 95) }
    }
    const [size] = yield* sql<{ bytes: string }>`SELECT pg_total_relation_size('messages')::text AS bytes`
    const partitionBytes = yield* sql<{ bytes: string }>`
      SELECT coalesce(sum(total_bytes), 0)::text AS bytes FROM monitor_table_sizes WHERE parent_table = 'messages'`
    return {
      rows,
      insertRowsPerSecond: Math.round(rows / (insertMs / 1000)),
      insertSeconds: Math.round(insertMs / 100) / 10,
      tableMb: Math.round(Number(partitionBytes[0]?.bytes ?? size?.bytes ?? 0) / 1024 / 1024),
      queries: results
    }
  }).pipe(Effect.scoped)

const main = Effect.gen(function*() {
  const figures = []
  for (const rows of sizes) {
    process.stderr.write(`generating ${rows} rows...\n`)
    figures.push(yield* measureSize(rows))
  }
  const header = ["rows", "insert rows/s", "size MB", ...queries.flatMap(([name]) => [`${name} p50 ms`, `${name} p95 ms`])]
  console.log(table(header, figures.map((figure) => [
    figure.rows,
    figure.insertRowsPerSecond,
    figure.tableMb,
    ...queries.flatMap(([name]) => [figure.queries[name]!.p50, figure.queries[name]!.p95])
  ])))
  console.log(JSON.stringify({ bench: "database", runs, sizes: figures }))
})

Effect.runPromise(main).catch((error) => {
  console.error(error)
  process.exit(1)
})
