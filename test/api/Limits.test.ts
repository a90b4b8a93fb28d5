/**
 * Bounded cost per key: searches and counts run within per-key and overall
 * concurrency limits, under a statement timeout and within each key's budget
 * of query time, each refusal a 429 or 503 with Retry-After; a search ranks
 * only its newest matches.
 */
import { assert, describe, layer } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { HttpClient, HttpClientRequest } from "effect/http"
import { ChannelId } from "../../src/domain/Message.ts"
import { encodeCursor } from "../../src/programs/api/Cursor.ts"
import { client, insertChannel, insertMessage, Keys, layerTestApi, openTransaction, sql, TestApi } from "./TestApi.ts"

const channel = 781_001

const get = (path: string, key: string) =>
  Effect.gen(function*() {
    const http = yield* HttpClient.HttpClient
    const response = yield* http.execute(HttpClientRequest.get(path).pipe(HttpClientRequest.setHeader("x-api-key", key)))
    return {
      status: response.status,
      retryAfter: response.headers["retry-after"],
      body: (yield* response.json) as { code?: string; message?: string; hits?: ReadonlyArray<unknown> }
    }
  })

/** Until PostgreSQL shows `count` statements matching `pattern` waiting on a lock. */
const untilWaiting = (pattern: string, count: number) =>
  Effect.gen(function*() {
    for (let attempt = 0; attempt < 200; attempt++) {
      const [row] = yield* sql(`SELECT count(*)::int AS n FROM pg_stat_activity
        WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '${pattern}'`)
      if (row?.n === count) return
      yield* Effect.sleep("25 millis")
    }
    assert.fail(`no statement like ${pattern} waited on the lock`)
  })

describe("Gateway API cost bounds", () => {
  // A budget that the 1.5 s timed-out search leaves positive: these are the slots' refusals alone.
  layer(layerTestApi({
    expensive: {
      perKey: 1,
      total: 1,
      statementTimeout: "1500 millis",
      refusalDelay: "100 millis",
      budget: { perSecond: "1 second", burst: "5 seconds" }
    }
  }), {
    timeout: "60 seconds",
    excludeTestServices: true
  })((it) => {
    it.effect("limits searches and counts per key and overall, and ends them at the statement timeout", () =>
      Effect.gen(function*() {
        yield* insertChannel(channel, "limits")
        yield* insertMessage({ channelId: channel, messageId: 1, text: "BTC long" })
        const search = `/api/v1/search?q=btc&channelId=${channel}`
        assert.strictEqual((yield* get(search, Keys.reader)).status, 200)
        // A lock held elsewhere keeps the first search running until its statement timeout.
        const { database } = yield* TestApi
        const blocker = yield* openTransaction(database, "LOCK TABLE messages IN ACCESS EXCLUSIVE MODE")
        const slow = yield* get(search, Keys.reader).pipe(Effect.forkChild)
        yield* untilWaiting("%websearch_to_tsquery%", 1)
        const sameKey = yield* get(search, Keys.reader)
        assert.deepStrictEqual([sameKey.status, sameKey.body.code, sameKey.retryAfter], [429, "rate_limited", "1"])
        assert.match(sameKey.body.message ?? "", /already runs 1 searches or counts \(api\.expensive\.perKey\)/)
        const otherKey = yield* get("/api/v1/counts?from=2026-01-05T00:00:00Z&to=2026-01-06T00:00:00Z", Keys.admin)
        assert.deepStrictEqual([otherKey.status, otherKey.body.code, otherKey.retryAfter], [503, "server_busy", "1"])
        // Another key's acknowledgement does not queue behind them: the slots
        // bound searches and counts only, and leave the pool to the rest.
        const http = yield* HttpClient.HttpClient
        const ack = yield* http.execute(
          HttpClientRequest.put("/api/v1/consumers/billing/checkpoint").pipe(
            HttpClientRequest.setHeader("x-api-key", Keys.acker),
            HttpClientRequest.bodyJsonUnsafe({ cursor: encodeCursor(1n) })
          )
        )
        assert.strictEqual(ack.status, 200)
        const timedOut = yield* Fiber.join(slow)
        assert.deepStrictEqual([timedOut.status, timedOut.body.code, timedOut.retryAfter], [503, "query_timeout", "1"])
        assert.match(timedOut.body.message ?? "", /1500 ms statement timeout/)
        yield* blocker.commit
        const after = yield* get(search, Keys.reader)
        assert.deepStrictEqual([after.status, after.body.hits?.length], [200, 1])
        const metrics = yield* (yield* http.get("/metrics")).text
        for (const reason of ["key_busy", "server_busy", "query_timeout"]) {
          assert.match(metrics, new RegExp(`api_requests_refused_total\\{[^}]*reason="${reason}"[^}]*\\} 1`))
        }
      }))
  })
})

describe("Gateway API search bound and time budget", () => {
  // Ranks among the newest 20 matches; a key earns 1 ms of query time a
  // second, at most 1 s ahead.
  layer(layerTestApi({
    expensive: {
      perKey: 1,
      total: 2,
      statementTimeout: "1500 millis",
      refusalDelay: "100 millis",
      searchMatches: 20,
      budget: { perSecond: "1 millis", burst: "1 second" }
    }
  }), { timeout: "60 seconds", excludeTestServices: true })((it) => {
    it.effect("ranks only the newest matches, the superseded versions left out, however many rows match", () =>
      Effect.gen(function*() {
        const bounded = ChannelId.make(781_002)
        yield* insertChannel(bounded, "bounded")
        // 2,000 matches, one a minute; the oldest says the word twice (it would rank first among them all).
        yield* sql(`
          INSERT INTO messages (channel_id, message_id, version, date, sender_id, sender_kind, sender_name, text, raw, received_at)
          SELECT ${bounded}, g, 0, timestamptz '2026-01-05' + g * interval '1 minute', 42, 'channel', 'Signals',
                 CASE WHEN g = 1 THEN 'solusdt solusdt long' ELSE 'solusdt long ' || g END,
                 jsonb_build_object('_', 'message', 'id', g), timestamptz '2026-01-05' + g * interval '1 minute'
          FROM generate_series(1, 2000) g`)
        // The newest message, edited to say the word twice; the next newest, edited to drop it.
        yield* insertMessage({ channelId: bounded, messageId: 2000, version: 1_767_600_000, date: "2026-01-06T09:20:00Z", text: "solusdt solusdt short" })
        yield* insertMessage({ channelId: bounded, messageId: 1999, version: 1_767_600_000, date: "2026-01-06T09:19:00Z", text: "closed" })
        const { hits } = yield* (yield* client(Keys.admin)).read.search({ query: { q: "solusdt", channelId: bounded, limit: 100 } })
        // The newest 20 matching versions are messages 2000 (both versions) and 1982 to 1999; version 0 of
        // 2000 and all of 1999 are superseded; message 1 is far older than the bound.
        assert.deepStrictEqual(hits.map((hit) => hit.messageId), [2000, ...Array.from({ length: 17 }, (_, i) => 1998 - i)])
        assert.strictEqual(hits[0]?.version, 1_767_600_000)
        assert.isTrue((hits[0]?.rank ?? 0) > (hits[1]?.rank ?? 0))
      }))

    it.effect("refuses a key that spent its query time with 429 and the wait it needs, while another key searches", () =>
      Effect.gen(function*() {
        yield* insertChannel(channel, "budget")
        yield* insertMessage({ channelId: channel, messageId: 1, text: "BTC long" })
        const search = `/api/v1/search?q=btc&channelId=${channel}`
        // A lock held elsewhere keeps the reader's search waiting until its 1.5 s statement timeout:
        // 1.5 s charged to a budget of 1 s, 500 ms of debt at 1 ms a second.
        const { database } = yield* TestApi
        const blocker = yield* openTransaction(database, "LOCK TABLE messages IN ACCESS EXCLUSIVE MODE")
        const timedOut = yield* get(search, Keys.reader)
        assert.deepStrictEqual([timedOut.status, timedOut.body.code], [503, "query_timeout"])
        yield* blocker.commit
        const refused = yield* get(search, Keys.reader)
        assert.deepStrictEqual([refused.status, refused.body.code], [429, "rate_limited"])
        assert.isAtLeast(Number(refused.retryAfter), 490)
        assert.match(refused.body.message ?? "", /spent its search and count time \(api\.expensive\.budget/)
        const counts = yield* get(`/api/v1/counts?from=2026-01-05T00:00:00Z&to=2026-01-06T00:00:00Z&channelId=${channel}`, Keys.reader)
        assert.strictEqual(counts.status, 429)
        const other = yield* get(search, Keys.admin)
        assert.deepStrictEqual([other.status, other.body.hits?.length], [200, 1])
        const metrics = yield* (yield* (yield* HttpClient.HttpClient).get("/metrics")).text
        assert.match(metrics, /api_requests_refused_total\{[^}]*reason="key_budget"[^}]*\} 2/)
      }))
  })
})
