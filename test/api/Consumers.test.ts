/**
 * Consumer state belongs to its consumer: which keys may read and change a
 * consumer's checkpoint and marks, which cursors a checkpoint accepts, and
 * which marks are stored.
 */
import { assert, describe, layer } from "@effect/vitest"
import { Effect } from "effect"
import { HttpClient, HttpClientRequest } from "effect/http"
import { createHash } from "node:crypto"
import { encodeCursor } from "../../src/programs/api/Cursor.ts"
import { insertChannel, insertDeletion, insertMessage, Keys, layerTestApi, sql } from "./TestApi.ts"

const channel = 780_001
const hash = (key: string) => createHash("sha256").update(key).digest("hex")
const stranger = "stranger-secret-0123456789"
const desk = "desk-secret-0123456789"

const send = (method: "GET" | "POST" | "PUT", path: string, key: string, body?: unknown) =>
  Effect.gen(function*() {
    const http = yield* HttpClient.HttpClient
    let request = HttpClientRequest.make(method)(path).pipe(HttpClientRequest.setHeader("x-api-key", key))
    if (body !== undefined) request = HttpClientRequest.bodyJsonUnsafe(request, body)
    const response = yield* http.execute(request)
    return {
      status: response.status,
      body: (yield* response.json) as { code?: string; message?: string; cursor?: string; marked?: number; unknown?: Array<string> }
    }
  })

const seed = Effect.gen(function*() {
  const [known] = yield* sql(`SELECT count(*)::int AS n FROM channels WHERE channel_id = ${channel}`)
  if (known?.n !== 0) return
  yield* insertChannel(channel, "consumers")
  yield* insertMessage({ channelId: channel, messageId: 1, text: "BTC long" })
  yield* insertMessage({ channelId: channel, messageId: 1, version: 1_767_607_300, text: "BTC long (edited)" })
  yield* insertMessage({ channelId: channel, messageId: 2, text: "ETH short" })
  yield* insertDeletion(channel, 2, "2026-01-05T11:00:00Z")
})

const marks = (consumer: string) =>
  sql(`SELECT event_key FROM consumer_processed WHERE consumer = '${consumer}' ORDER BY event_key`).pipe(
    Effect.map((rows) => rows.map((row) => row.event_key))
  )

describe("Gateway API consumer state", () => {
  layer(
    layerTestApi({
      keys: [
        { name: "acker", sha256: hash(Keys.acker), scopes: ["ack"], consumers: ["billing"] },
        { name: "stranger", sha256: hash(stranger), scopes: ["ack"] },
        { name: "desk", sha256: hash(desk), scopes: ["read", "ack"], consumers: ["desk-a", "desk-b"] },
        { name: "admin", sha256: hash(Keys.admin), scopes: ["admin"] }
      ],
      maxMarksPerConsumer: 3
    }),
    { timeout: "60 seconds" }
  )((it) => {
    it.effect("lets a key read and change only its own consumers, and admin any", () =>
      Effect.gen(function*() {
        yield* seed
        const cursor = encodeCursor(1n)
        const keys = [`${channel}:1:0`]
        for (const [key, consumer] of [[stranger, "billing"], [Keys.acker, "stranger"], [desk, "desk"], [desk, "billing"]] as const) {
          const path = `/api/v1/consumers/${consumer}`
          for (
            const answer of [
              yield* send("GET", `${path}/checkpoint`, key),
              yield* send("PUT", `${path}/checkpoint`, key, { cursor }),
              yield* send("POST", `${path}/processed`, key, { keys })
            ]
          ) {
            assert.strictEqual(answer.status, 403, `${consumer}: ${JSON.stringify(answer.body)}`)
            assert.strictEqual(answer.body.code, "forbidden")
            assert.include(answer.body.message, `consumer "${consumer}"`)
          }
        }
        assert.deepStrictEqual(yield* sql("SELECT * FROM consumer_checkpoints"), [])
        assert.deepStrictEqual(yield* sql("SELECT * FROM consumer_processed"), [])
        // Its own name by default, its configured list otherwise; admin anything.
        for (const [key, consumer] of [[stranger, "stranger"], [Keys.acker, "billing"], [desk, "desk-b"], [Keys.admin, "billing"]] as const) {
          const path = `/api/v1/consumers/${consumer}`
          assert.strictEqual((yield* send("PUT", `${path}/checkpoint`, key, { cursor })).status, 200, `${consumer}`)
          assert.strictEqual((yield* send("GET", `${path}/checkpoint`, key)).body.cursor, cursor)
          assert.strictEqual((yield* send("POST", `${path}/processed`, key, { keys })).status, 200)
        }
      }))

    it.effect("refuses an empty cursor and one past the newest event, keeping the stored checkpoint", () =>
      Effect.gen(function*() {
        yield* seed
        const path = "/api/v1/consumers/billing/checkpoint"
        const [newest] = yield* sql("SELECT last_value::text AS seq FROM event_seq")
        const current = encodeCursor(BigInt(String(newest?.seq)))
        assert.strictEqual((yield* send("PUT", path, Keys.acker, { cursor: current })).status, 200)
        const empty = yield* send("PUT", path, Keys.acker, { cursor: "" })
        assert.deepStrictEqual([empty.status, empty.body.code], [400, "malformed_cursor"])
        const beyond = yield* send("PUT", path, Keys.acker, { cursor: encodeCursor(BigInt(String(newest?.seq)) + 1_000_000n) })
        assert.deepStrictEqual([beyond.status, beyond.body.code], [400, "cursor_beyond_newest"])
        assert.match(beyond.body.message ?? "", /past the newest event/)
        assert.strictEqual((yield* send("GET", path, Keys.acker)).body.cursor, current)
      }))

    it.effect("stores marks only for stored events, reports the others, and bounds each consumer's marks", () =>
      Effect.gen(function*() {
        yield* seed
        yield* sql("DELETE FROM consumer_processed WHERE consumer = 'desk-a'")
        const path = "/api/v1/consumers/desk-a/processed"
        const unknown = [`${channel}:99:0`, `${channel}:1:1767600000`, `${channel}:1:deleted`, "9999999999999999999:1:0"]
        const first = yield* send("POST", path, desk, { keys: [`${channel}:1:1767607300`, `${channel}:2:deleted`, ...unknown] })
        assert.strictEqual(first.status, 200, JSON.stringify(first.body))
        assert.deepStrictEqual([first.body.marked, first.body.unknown], [2, unknown])
        assert.deepStrictEqual(yield* marks("desk-a"), [`${channel}:1:1767607300`, `${channel}:2:deleted`])
        // The limit is 3: one more fits, two more do not, and nothing of a refused request is stored.
        const over = yield* send("POST", path, desk, { keys: [`${channel}:1:0`, `${channel}:2:0`] })
        assert.deepStrictEqual([over.status, over.body.code], [409, "mark_limit_reached"])
        assert.match(over.body.message ?? "", /holds 2 processed marks; 2 more would pass its limit of 3/)
        assert.lengthOf(yield* marks("desk-a"), 2)
        const fits = yield* send("POST", path, desk, { keys: [`${channel}:1:0`, `${channel}:2:deleted`] })
        assert.deepStrictEqual([fits.status, fits.body.marked], [200, 1])
        const [count] = yield* sql("SELECT marks::int FROM consumer_mark_counts WHERE consumer = 'desk-a'")
        assert.strictEqual(count?.marks, 3)
      }))
  })
})
