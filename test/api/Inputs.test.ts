import { assert, describe, layer } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { HttpClient, HttpClientRequest, HttpServer } from "effect/http"
import * as Net from "node:net"
import { ChannelId } from "../../src/domain/Message.ts"
import { encodeCursor } from "../../src/programs/api/Cursor.ts"
import { client, insertChannel, insertMessage, Keys, layerTestApi, openTransaction, sql, TestApi } from "./TestApi.ts"

const channel = 779_001
const injection = "'; DROP TABLE messages; --"

const send = (method: "GET" | "POST" | "PUT", path: string, options: { body?: string; contentType?: string; key?: string } = {}) =>
  Effect.gen(function*() {
    const http = yield* HttpClient.HttpClient
    let request = HttpClientRequest.make(method)(path).pipe(HttpClientRequest.setHeader("x-api-key", options.key ?? Keys.admin))
    if (options.body !== undefined) request = HttpClientRequest.bodyText(request, options.body, options.contentType ?? "application/json")
    const response = yield* http.execute(request)
    return { status: response.status, body: (yield* response.json) as { status?: number; code?: string; message?: string } }
  })

const tableCounts = sql(`
  SELECT (SELECT count(*) FROM messages)::int AS messages,
         (SELECT count(*) FROM consumer_processed)::int AS processed,
         (SELECT count(*) FROM consumer_checkpoints)::int AS checkpoints`)

describe("Gateway API inputs", () => {
  // Real time: the long poll waits on the clock.
  layer(layerTestApi({ longPollMaxWait: "5 seconds" }), { timeout: "60 seconds", excludeTestServices: true })((it) => {
    it.effect("refuses bad parameters with a 400 that names them, and changes nothing", () =>
      Effect.gen(function*() {
        yield* insertChannel(channel, "inputs")
        yield* insertMessage({ channelId: channel, messageId: 1, text: "BTC long" })
        const before = yield* tableCounts
        const cases: ReadonlyArray<readonly [string, number, string, RegExp]> = [
          ["/api/v1/messages?limit=-1", 400, "invalid_parameter", /limit/],
          ["/api/v1/messages?limit=0", 400, "invalid_parameter", /limit/],
          ["/api/v1/messages?limit=100000000000", 400, "invalid_parameter", /limit must be between 1 and 1000/],
          ["/api/v1/messages?limit=ten", 400, "invalid_parameter", /limit/],
          ["/api/v1/messages?wait=600", 400, "invalid_parameter", /wait must be between 0 and 5/],
          ["/api/v1/messages?after=not-a-cursor!", 400, "malformed_cursor", /after is not a cursor/],
          [`/api/v1/messages?after=${Buffer.from("v2:5").toString("base64url")}`, 400, "malformed_cursor", /nextCursor/],
          [`/api/v1/messages?after=${encodeURIComponent(injection)}`, 400, "malformed_cursor", /after/],
          [`/api/v1/messages?channelId=${encodeURIComponent(injection)}`, 400, "invalid_parameter", /channelId/],
          [`/api/v1/channels/${encodeURIComponent(injection)}/recent`, 400, "invalid_parameter", /channelId/],
          ["/api/v1/messages?channelId=123456", 404, "unknown_channel", /GET \/api\/v1\/channels/],
          ["/api/v1/counts?from=yesterday&to=2026-01-06T00:00:00Z", 400, "invalid_parameter", /from must be an ISO 8601/],
          ["/api/v1/counts?from=2026-01-06T00:00:00Z&to=2026-01-05T00:00:00Z", 400, "invalid_parameter", /before to/],
          ["/api/v1/counts?from=2020-01-01T00:00:00Z&to=2026-01-05T00:00:00Z&bucket=minute", 400, "invalid_parameter", /at most 1000/],
          ["/api/v1/search?q=", 400, "invalid_parameter", /q/],
          [`/api/v1/consumers/${encodeURIComponent(injection)}/checkpoint`, 400, "invalid_parameter", /consumer/]
        ]
        for (const [path, status, code, message] of cases) {
          const answer = yield* send("GET", path)
          assert.strictEqual(answer.status, status, `${path}: ${JSON.stringify(answer.body)}`)
          assert.strictEqual(answer.body.status, status)
          assert.strictEqual(answer.body.code, code, path)
          assert.match(answer.body.message ?? "", message, path)
        }
        const search = yield* send("GET", `/api/v1/search?q=${encodeURIComponent(injection)}`)
        assert.strictEqual(search.status, 200)
        assert.deepStrictEqual(yield* tableCounts, before)
      }))

    it.effect("refuses bad bodies: too large, not JSON, malformed, or with bad keys, and stores nothing", () =>
      Effect.gen(function*() {
        const before = yield* tableCounts
        const processed = "/api/v1/consumers/c1/processed"
        const tooLarge = yield* send("POST", processed, { body: JSON.stringify({ keys: Array(400).fill(`${channel}:1:0`) }) })
        assert.strictEqual(tooLarge.status, 413)
        assert.strictEqual(tooLarge.body.code, "body_too_large")
        assert.match(tooLarge.body.message ?? "", /limit is 4096/)
        const text = yield* send("POST", processed, { body: "keys=1", contentType: "text/plain" })
        assert.strictEqual(text.status, 415)
        assert.strictEqual(text.body.code, "unsupported_media_type")
        const form = yield* send("PUT", "/api/v1/consumers/c1/checkpoint", { body: "cursor=x", contentType: "application/x-www-form-urlencoded" })
        assert.strictEqual(form.status, 415)
        const malformed = yield* send("POST", processed, { body: "{\"keys\": [" })
        assert.strictEqual(malformed.status, 400)
        assert.match(malformed.body.message ?? "", /JSON/)
        const badKeys = yield* send("POST", processed, { body: JSON.stringify({ keys: [injection] }) })
        assert.strictEqual(badKeys.status, 400)
        assert.match(badKeys.body.message ?? "", /keys/)
        const noKeys = yield* send("POST", processed, { body: JSON.stringify({ keys: [] }) })
        assert.strictEqual(noKeys.status, 400)
        const badCursor = yield* send("PUT", "/api/v1/consumers/c1/checkpoint", { body: JSON.stringify({ cursor: injection }) })
        assert.strictEqual(badCursor.status, 400)
        assert.strictEqual(badCursor.body.code, "malformed_cursor")
        assert.deepStrictEqual(yield* tableCounts, before)
      }))

    it.effect("answers what no endpoint answers, and what Node's parser refuses, in the same JSON shape", () =>
      Effect.gen(function*() {
        const cases: ReadonlyArray<readonly [string, number, string, RegExp]> = [
          ["GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n", 404, "not_found", /No endpoint at \/nowhere/],
          ["DELETE /api/v1/channels HTTP/1.1\r\nHost: x\r\n\r\n", 405, "method_not_allowed", /takes GET/],
          [
            `POST /api/v1/consumers/c1/processed HTTP/1.1\r\nHost: x\r\nX-API-Key: ${Keys.admin}\r\n` +
            `Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n` +
            `2000\r\n{"keys":[${`"${channel}:1:0",`.repeat(600).slice(0, 8192 - 9)}\r\n0\r\n\r\n`,
            413,
            "body_too_large",
            /limit is 4096/
          ],
          [`GET /api/v1/channels HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(20_000)}\r\n\r\n`, 431, "headers_too_large", /too large/],
          ["GET /api/v1/channels HTTP/1.1\r\nHost: x\r\nX-Nul: a\u0000b\r\n\r\n", 400, "invalid_parameter", /invalid byte/]
        ]
        for (const [request, status, code, message] of cases) {
          const answer = yield* raw(request)
          assert.strictEqual(answer.status, status, `${request.slice(0, 40)}: ${answer.head} ${answer.body}`)
          const body = JSON.parse(answer.body) as { status: number; code: string; message: string }
          assert.deepStrictEqual([body.status, body.code], [status, code])
          assert.match(body.message, message)
          if (status === 405) assert.match(answer.head, /allow: GET/i)
        }
        for (const q of ["%00", "a%01b", "%1B%5B2J"]) {
          const answer = yield* send("GET", `/api/v1/search?q=${q}`)
          assert.strictEqual(answer.status, 400, `q=${q}: ${JSON.stringify(answer.body)}`)
          assert.match(answer.body.message ?? "", /q must be text/)
        }
      }))

    it.effect("counts refused API keys and logs them without the key", () =>
      Effect.gen(function*() {
        yield* send("GET", "/api/v1/channels", { key: "wrong-secret-4242" })
        const http = yield* HttpClient.HttpClient
        const metrics = yield* (yield* http.get("/metrics")).text
        assert.match(metrics, /api_auth_failures_total\{[^}]*reason="unauthenticated"[^}]*\} [1-9]/)
        assert.notInclude(metrics, "wrong-secret-4242")
      }))

    it.effect("answers a long poll as soon as an event commits", () =>
      Effect.gen(function*() {
        const reader = yield* client(Keys.reader)
        const head = yield* reader.read.events({ query: { channelId: ChannelId.make(channel) } })
        const started = Date.now()
        const poll = yield* reader.read.events({ query: { channelId: ChannelId.make(channel), after: head.nextCursor, wait: 4 } }).pipe(
          Effect.forkChild
        )
        yield* Effect.sleep("300 millis")
        yield* insertMessage({ channelId: channel, messageId: 2, text: "ETH short" })
        const page = yield* Fiber.join(poll)
        const elapsed = Date.now() - started
        assert.deepStrictEqual(page.events.map((event) => event.key), [`${channel}:2:0`])
        assert.isBelow(elapsed, 2_000)
        const idle = Date.now()
        const none = yield* reader.read.events({ query: { channelId: ChannelId.make(channel), after: page.nextCursor, wait: 1 } })
        assert.deepStrictEqual([none.events, none.nextCursor], [[], page.nextCursor], "the same cursor: nothing skipped")
        // Up to a fifth early (CommitWatch.waitSpread), never late by more than the server's own delay.
        assert.isAtLeast(Date.now() - idle, 790)
      }))

    it.effect("refuses a long poll on an unknown channel at once, and finds the channel once it exists", () =>
      Effect.gen(function*() {
        const later = 779_003
        const started = Date.now()
        const unknown = yield* send("GET", `/api/v1/messages?channelId=${later}&wait=3`, { key: Keys.reader })
        assert.deepStrictEqual([unknown.status, unknown.body.code], [404, "unknown_channel"])
        assert.isBelow(Date.now() - started, 1_500, "refused before waiting")
        yield* insertChannel(later, "later")
        const known = yield* send("GET", `/api/v1/messages?channelId=${later}&wait=1`, { key: Keys.reader })
        assert.strictEqual(known.status, 200, JSON.stringify(known.body))
      }))

    it.effect("long polls following their cursors miss no event that commits while they wait", () =>
      Effect.gen(function*() {
        const busy = 779_004
        yield* insertChannel(busy, "busy")
        const reader = yield* client(Keys.reader)
        const head = yield* reader.read.events({ query: { channelId: ChannelId.make(busy) } })
        const follow = (channelId: ChannelId | undefined) =>
          Effect.gen(function*() {
            const seen: Array<string> = []
            let after = head.nextCursor
            while (seen.filter((key) => key.startsWith(`${busy}:`)).length < 12) {
              const page = yield* reader.read.events({ query: { ...(channelId === undefined ? {} : { channelId }), after, wait: 2, limit: 5 } })
              seen.push(...page.events.map((event) => event.key))
              after = page.nextCursor
            }
            return seen.filter((key) => key.startsWith(`${busy}:`))
          }).pipe(Effect.forkChild)
        const followers = yield* Effect.forEach([ChannelId.make(busy), ChannelId.make(busy), undefined], follow)
        for (let message = 1; message <= 12; message++) {
          yield* Effect.sleep(message % 3 === 0 ? "150 millis" : "20 millis")
          yield* insertMessage({ channelId: busy, messageId: message, text: `event ${message}` })
        }
        const expected = Array.from({ length: 12 }, (_, i) => `${busy}:${i + 1}:0`)
        for (const seen of yield* Effect.forEach(followers, Fiber.join)) assert.deepStrictEqual(seen, expected)
      }))

    it.effect("holds back events a transaction in flight could still precede", () =>
      Effect.gen(function*() {
        const reader = yield* client(Keys.reader)
        const head = yield* reader.read.events({ query: {} })
        // An open transaction takes a lower event_seq first; a later one commits above it.
        const { database } = yield* TestApi
        const blocker = yield* openTransaction(database, `
          INSERT INTO message_deletions (channel_id, message_id, deleted_at, received_at)
          VALUES (${channel}, 500, now(), now())`)
        yield* insertMessage({ channelId: channel, messageId: 3, text: "after the open transaction" })
        const held = yield* reader.read.events({ query: { after: head.nextCursor } })
        assert.deepStrictEqual(held.events, [])
        yield* blocker.commit
        // Released once no transaction older than the rows is in flight: the cluster is shared with
        // other suites, whose transactions count too (xids are cluster-wide), so wait for it.
        let released = yield* reader.read.events({ query: { after: head.nextCursor } })
        for (let attempt = 0; attempt < 400 && released.events.length < 2; attempt++) {
          yield* Effect.sleep("100 millis")
          released = yield* reader.read.events({ query: { after: head.nextCursor } })
        }
        assert.deepStrictEqual(released.events.map((event) => event.key), [`${channel}:500:deleted`, `${channel}:3:0`])
      }))

    it.effect("refuses a poll's cursor past the newest event, and accepts every cursor it handed out", () =>
      Effect.gen(function*() {
        const lone = 779_002
        yield* insertChannel(lone, "lone")
        yield* insertMessage({ channelId: lone, messageId: 1, text: "the only message" })
        const reader = yield* client(Keys.reader)
        const page = yield* reader.read.events({ query: { channelId: ChannelId.make(lone) } })
        const handedOut = [page.nextCursor, ...page.events.map((event) => event.cursor)]
        const [drawn] = yield* sql("SELECT last_value::text AS seq FROM event_seq")
        const newest = BigInt(String(drawn?.seq))
        const beyond = encodeCursor(newest + 1_000_000n)
        for (const query of [`after=${beyond}`, `after=${beyond}&channelId=${lone}`, `after=${beyond}&wait=2`]) {
          const started = Date.now()
          const answer = yield* send("GET", `/api/v1/messages?${query}`, { key: Keys.reader })
          assert.deepStrictEqual([answer.status, answer.body.code], [400, "cursor_beyond_newest"], query)
          assert.match(answer.body.message ?? "", /past the newest event .*nextCursor/, query)
          assert.isBelow(Date.now() - started, 1_500, `${query}: refused before waiting`)
        }
        // A value drawn by a transaction still in flight is no event yet, but nothing can commit
        // below the values the sequence drew: a cursor at it is accepted (an empty page).
        const { database } = yield* TestApi
        const inFlight = yield* openTransaction(database, `
          INSERT INTO message_deletions (channel_id, message_id, deleted_at, received_at)
          VALUES (${lone}, 2, now(), now())`)
        const [drawnInFlight] = yield* sql("SELECT last_value::text AS seq FROM event_seq")
        const atDrawn = yield* send("GET", `/api/v1/messages?after=${encodeCursor(BigInt(String(drawnInFlight?.seq)))}`, { key: Keys.reader })
        assert.strictEqual(atDrawn.status, 200, JSON.stringify(atDrawn.body))
        yield* inFlight.commit
        // The cursors handed out stay valid even once the events they point at are gone (as when
        // retention drops their chunk): the bound is the sequence, which never goes back.
        yield* sql(`DELETE FROM messages WHERE channel_id = ${lone}`)
        yield* sql(`DELETE FROM message_deletions WHERE channel_id = ${lone}`)
        for (const after of handedOut) {
          const answer = yield* send("GET", `/api/v1/messages?after=${after}&channelId=${lone}`, { key: Keys.reader })
          assert.strictEqual(answer.status, 200, JSON.stringify(answer.body))
        }
      }))
  })
})


/** Sends `request` as raw bytes to the test server and reads the whole answer (the server closes or it is complete). */
const raw = (request: string) =>
  Effect.gen(function*() {
    const server = yield* HttpServer.HttpServer
    const address = server.address
    const port = address._tag === "UnixPathAddress" ? 0 : address.port
    return yield* Effect.callback<{ status: number; head: string; body: string }>((resume) => {
      const socket = Net.connect(port, "127.0.0.1")
      let data = ""
      const finish = () => {
        const [head = "", body = ""] = data.split("\r\n\r\n", 2)
        resume(Effect.succeed({ status: Number(head.split(" ")[1]), head, body }))
      }
      socket.on("data", (chunk) => {
        data += chunk.toString("utf8")
        const length = /content-length: (\d+)/i.exec(data)
        const end = data.indexOf("\r\n\r\n")
        if (length !== null && end !== -1 && data.length - end - 4 >= Number(length[1])) {
          socket.destroy()
          finish()
        }
      })
      socket.on("end", finish)
      socket.on("error", finish)
      socket.write(request)
    })
  })
