/**
 * Bounded cost per key: searches and counts run within per-key and overall
 * concurrency limits and under a statement timeout, each refusal a 429 or
 * 503 with Retry-After.
 */
import { assert, describe, layer } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { HttpClient, HttpClientRequest } from "effect/http"
import { encodeCursor } from "../../src/programs/api/Cursor.ts"
import { insertChannel, insertMessage, Keys, layerTestApi, openTransaction, sql, TestApi } from "./TestApi.ts"

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
  layer(layerTestApi({ expensive: { perKey: 1, total: 1, statementTimeout: "1500 millis" } }), {
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
