/**
 * The API's poll never passes an event a transaction still in flight will
 * commit (sql/0057): batches draw their event_seq values in the order of
 * their transaction ids, which the poll's watermark relies on.
 *
 * The interleaving that broke it, made deterministic with a key conflict: a
 * batch takes its transaction id, then waits on a row another transaction
 * holds; a younger transaction writes meanwhile and stays open; the batch
 * goes on, commits, and a poll runs before the younger one commits. Before
 * 0057 the waiting batch drew its last value after the younger one's, so the
 * poll returned it and the cursor passed the younger one's event for good.
 * Beside it, the same property under real concurrency: four writers through
 * PgBouncer and a consumer following the feed (on 0056 it missed 2 to 32 of
 * 2,120 events, in each of three runs).
 */
import { PgClient } from "@effect/sql-pg"
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Schedule } from "effect"
import { Reactivity } from "effect/reactivity"
import { settledPrefix } from "../../src/layers/PgMessageQuery.ts"
import { makeTestDatabase, type TestDatabase } from "../support/Database.ts"

/** One date for every row: the same message written twice is the same key, partitioned or not. */
const date = Math.floor(Date.now() / 1000)

const version = (channel: number, message: number) =>
  JSON.stringify([{
    channel_id: channel,
    message_id: message,
    version: 0,
    date,
    edit_date: null,
    sender_id: 1,
    sender_kind: "user",
    sender_name: "a",
    text: `message ${message}`,
    text_escaped: false,
    entities: [],
    media: null,
    reply_to_message_id: null,
    grouped_id: null,
    views: null,
    forwards: null,
    raw: {},
    received_at: date
  }])

const batch = (...rows: ReadonlyArray<string>) => JSON.stringify(rows.flatMap((row) => JSON.parse(row) as Array<unknown>))

/** A connection of its own, straight to PostgreSQL, as each writer and the poller have. */
const connect = (database: TestDatabase) => PgClient.makeClient({ url: database.migrationUrl, prepare: false })

/** Writes `rows` in a transaction that commits only once `commit` is done; `wrote` when the write returned. */
const writer = (sql: PgClient.PgClient, rows: string, wrote: Deferred.Deferred<void>, commit: Deferred.Deferred<void>) =>
  sql.withTransaction(Effect.gen(function*() {
    yield* sql.unsafe(`SELECT write_events($1::json, NULL)`, [rows])
    yield* Deferred.succeed(wrote, undefined)
    yield* Deferred.await(commit)
  }))

/** The messages a consumer following the whole feed gets from `after` on, with the cursor after them. */
const poll = (sql: PgClient.PgClient, after: string) =>
  sql.unsafe<{ event_seq: string; message_id: number; settled: boolean }>(
    `SELECT event_seq::text, message_id, settled FROM api_event_pages(ARRAY[$1]::bigint[], NULL, ARRAY[100], 30)`,
    [after]
  ).pipe(Effect.map((rows) => {
    const page = settledPrefix(rows)
    return { messages: page.map((row) => row.message_id), cursor: page.at(-1)?.event_seq ?? after }
  }))

describe("event_seq in transaction order (sql/0057)", () => {
  it.live("a poll between two writers' commits never passes the open one's event", () =>
    Effect.gen(function*() {
      const database = yield* makeTestDatabase("event_seq_order")
      const [holder, waiting, younger, poller] = yield* Effect.all([connect(database), connect(database), connect(database), connect(database)])
      const signals = yield* Effect.all(Array.from({ length: 6 }, () => Deferred.make<void>()))
      const [holderWrote, holderCommits, waitingWrote, waitingCommits, youngerWrote, youngerCommits] = signals as [
        Deferred.Deferred<void>, Deferred.Deferred<void>, Deferred.Deferred<void>,
        Deferred.Deferred<void>, Deferred.Deferred<void>, Deferred.Deferred<void>
      ]
      // The day's partition or chunk exists first, so the only wait below is on the row.
      yield* poller.unsafe(`SELECT write_events($1::json, NULL)`, [version(8, 1)])
      const start = (yield* poll(poller, "0")).cursor

      // Message 1 written and held open; the waiting batch (1 again, then 2) blocks on it.
      const holding = yield* writer(holder, version(7, 1), holderWrote, holderCommits).pipe(Effect.forkChild)
      yield* Deferred.await(holderWrote)
      const blocked = yield* writer(waiting, batch(version(7, 1), version(7, 2)), waitingWrote, waitingCommits).pipe(Effect.forkChild)
      const waits = yield* poller.unsafe<{ waiting: number }>(
        `SELECT count(*)::int AS waiting FROM pg_locks WHERE NOT granted AND locktype = 'transactionid'`
      ).pipe(
        Effect.repeat({ until: (rows) => rows[0]!.waiting > 0, schedule: Schedule.spaced("20 millis"), times: 250 })
      )
      assert.strictEqual(waits[0]!.waiting, 1, "the second batch waits on the first's row")
      // A younger transaction writes message 3 and stays open.
      const open = yield* writer(younger, version(7, 3), youngerWrote, youngerCommits).pipe(Effect.forkChild)
      yield* Deferred.await(youngerWrote)
      yield* Deferred.succeed(holderCommits, undefined)
      yield* Fiber.join(holding)
      yield* Deferred.await(waitingWrote)
      yield* Deferred.succeed(waitingCommits, undefined)
      yield* Fiber.join(blocked)

      const first = yield* poll(poller, start)
      yield* Deferred.succeed(youngerCommits, undefined)
      yield* Fiber.join(open)
      const second = yield* poll(poller, first.cursor)

      assert.deepStrictEqual([...first.messages, ...second.messages].sort(), [1, 2, 3])
    }).pipe(Effect.scoped, Effect.provide(Reactivity.layer)), { timeout: 60_000 })

  it.live("a consumer following the feed while four writers commit side by side gets every event once", () =>
    Effect.gen(function*() {
      const database = yield* makeTestDatabase("event_seq_writers")
      // Through PgBouncer, as the gateway's writers and the API reach the database.
      const [writers, poller] = yield* Effect.all([
        PgClient.make({ url: database.url, prepare: false, maxConnections: 4, minConnections: 4 }),
        connect(database)
      ])
      const expected: Array<number> = []
      const batches = Array.from({ length: 4 }, (_, writer) =>
        Array.from({ length: 50 }, (_, index) => {
          const messages = Array.from({ length: 1 + ((writer * 7 + index * 13) % 20) }, (_, row) => writer * 100_000 + index * 100 + row)
          expected.push(...messages)
          return batch(...messages.map((message) => version(9, message)))
        }))
      const start = (yield* poll(poller, "0")).cursor
      let writing = true
      const writes = yield* Effect.forEach(
        batches,
        (ofWriter) => Effect.forEach(ofWriter, (rows) => writers.unsafe(`SELECT write_events($1::json, NULL)`, [rows]), { discard: true }),
        { concurrency: "unbounded", discard: true }
      ).pipe(Effect.ensuring(Effect.sync(() => (writing = false))), Effect.forkChild)
      const seen: Array<number> = []
      let cursor = start
      // Follows the feed as the writers go, then until it has caught up with them.
      for (let empty = 0; empty < 3;) {
        const page = yield* poll(poller, cursor)
        seen.push(...page.messages)
        cursor = page.cursor
        empty = writing || page.messages.length > 0 ? 0 : empty + 1
      }
      yield* Fiber.join(writes)
      assert.strictEqual(seen.length, expected.length, "every event once")
      assert.deepStrictEqual([...seen].sort((a, b) => a - b), [...expected].sort((a, b) => a - b))
    }).pipe(Effect.scoped, Effect.provide(Reactivity.layer)), { timeout: 60_000 })

  it.live("releases the draw's lock when the draw fails, so the next batch is not held", () =>
    Effect.gen(function*() {
      const database = yield* makeTestDatabase("event_seq_lock")
      const sql = yield* connect(database)
      const drawLocks = sql.unsafe<{ held: number }>(
        `SELECT count(*)::int AS held FROM pg_locks
         WHERE locktype = 'advisory' AND objid = hashtext('telegram-gateway/event-seq')::oid`
      ).pipe(Effect.map((rows) => rows[0]!.held))
      // Room for one more value: a batch of two fails inside the draw, with the lock held.
      yield* sql.unsafe(`SELECT nextval('event_seq')`)
      const [{ last }] = yield* sql.unsafe<{ last: string }>(`SELECT last_value::text AS last FROM event_seq`) as unknown as Effect.Effect<
        [{ last: string }]
      >
      yield* sql.unsafe(`ALTER SEQUENCE event_seq MAXVALUE ${BigInt(last) + 1n}`)
      const refused = yield* sql.unsafe(`SELECT write_events($1::json, NULL)`, [batch(version(7, 1), version(7, 2))]).pipe(Effect.flip)
      assert.include(String((refused as { readonly reason?: { readonly cause?: unknown } }).reason?.cause), "reached maximum value")
      assert.strictEqual(yield* drawLocks, 0)
      yield* sql.unsafe(`ALTER SEQUENCE event_seq NO MAXVALUE`)
      const written = yield* sql.unsafe<{ inserted: number }>(`SELECT write_events($1::json, NULL) AS inserted`, [version(7, 3)])
      assert.strictEqual(written[0]!.inserted, 1)
    }).pipe(Effect.scoped, Effect.provide(Reactivity.layer)), { timeout: 60_000 })
})
