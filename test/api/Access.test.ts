import { assert, describe, layer } from "@effect/vitest"
import { Effect } from "effect"
import { HttpClient, HttpClientRequest } from "effect/http"
import { encodeCursor } from "../../src/programs/api/Cursor.ts"
import { client, insertChannel, insertMessage, Keys, layerTestApi } from "./TestApi.ts"

const channel = 778_001
const endpoints = [
  { method: "GET", path: "/api/v1/channels", scope: "read" },
  { method: "GET", path: "/api/v1/messages", scope: "read" },
  { method: "GET", path: `/api/v1/channels/${channel}/messages/1`, scope: "read" },
  { method: "GET", path: `/api/v1/channels/${channel}/recent`, scope: "read" },
  { method: "GET", path: "/api/v1/search?q=btc", scope: "read" },
  { method: "GET", path: "/api/v1/counts?from=2026-01-05T00:00:00Z&to=2026-01-06T00:00:00Z", scope: "read" },
  { method: "POST", path: "/api/v1/consumers/c1/processed", scope: "ack", body: { keys: [`${channel}:1:0`] } },
  { method: "GET", path: "/api/v1/consumers/c1/checkpoint", scope: "ack" },
  { method: "PUT", path: "/api/v1/consumers/c1/checkpoint", scope: "ack", body: { cursor: encodeCursor(1n) } },
  { method: "GET", path: "/api/v1/consumers", scope: "admin" }
] as const

const keyScopes: Record<keyof typeof Keys, ReadonlyArray<string>> = { reader: ["read"], acker: ["ack"], admin: ["read", "ack", "admin"], nobody: [] }

const call = (endpoint: typeof endpoints[number], key: string | undefined) =>
  Effect.gen(function*() {
    const http = yield* HttpClient.HttpClient
    let request = HttpClientRequest.make(endpoint.method)(endpoint.path)
    if (key !== undefined) request = HttpClientRequest.setHeader(request, "x-api-key", key)
    if ("body" in endpoint) request = HttpClientRequest.bodyJsonUnsafe(request, endpoint.body)
    const response = yield* http.execute(request)
    return { status: response.status, body: (yield* response.json) as { code?: string; message?: string }, headers: response.headers }
  })

describe("Gateway API access", () => {
  layer(layerTestApi(), { timeout: "60 seconds" })((it) => {
    it.effect("answers 401 without a key or with a wrong one, 403 without the scope, and serves each scope", () =>
      Effect.gen(function*() {
        yield* insertChannel(channel, "access")
        yield* insertMessage({ channelId: channel, messageId: 1, text: "BTC long" })
        for (const endpoint of endpoints) {
          const missing = yield* call(endpoint, undefined)
          assert.strictEqual(missing.status, 401, `${endpoint.path} without a key`)
          assert.strictEqual(missing.body.code, "unauthorized")
          assert.match(missing.body.message ?? "", /X-API-Key/)
          const wrong = yield* call(endpoint, "not-a-configured-key")
          assert.strictEqual(wrong.status, 401, `${endpoint.path} with a wrong key`)
          for (const [name, scopes] of Object.entries(keyScopes)) {
            const answer = yield* call(endpoint, Keys[name as keyof typeof Keys])
            if (scopes.includes(endpoint.scope)) {
              assert.strictEqual(answer.status, 200, `${endpoint.method} ${endpoint.path} as ${name}: ${JSON.stringify(answer.body)}`)
            } else {
              assert.strictEqual(answer.status, 403, `${endpoint.method} ${endpoint.path} as ${name}`)
              assert.strictEqual(answer.body.code, "forbidden")
              assert.include(answer.body.message ?? "", `"${endpoint.scope}"`)
            }
          }
        }
      }))

    it.effect("gives the typed client typed auth errors", () =>
      Effect.gen(function*() {
        const anonymous = yield* client(undefined)
        const unauthorized = yield* anonymous.read.channels().pipe(Effect.flip)
        assert.strictEqual(unauthorized._tag, "Unauthorized")
        const reader = yield* client(Keys.reader)
        const forbidden = yield* reader.admin.consumers().pipe(Effect.flip)
        assert.strictEqual(forbidden._tag, "Forbidden")
      }))
  })

  layer(layerTestApi({ rateLimit: { perSecond: 1, burst: 3 } }), { timeout: "60 seconds" })((it) => {
    it.effect("answers 429 with Retry-After past a key's burst, without charging other keys", () =>
      Effect.gen(function*() {
        const channels = endpoints[0]
        const statuses: Array<number> = []
        for (let i = 0; i < 4; i++) statuses.push((yield* call(channels, Keys.reader)).status)
        assert.deepStrictEqual(statuses, [200, 200, 200, 429])
        const limited = yield* call(channels, Keys.reader)
        assert.strictEqual(limited.body.code, "rate_limited")
        assert.strictEqual(limited.headers["retry-after"], "1")
        assert.strictEqual((yield* call(channels, Keys.admin)).status, 200)
        const reader = yield* client(Keys.reader)
        const typed = yield* reader.read.channels().pipe(Effect.flip)
        assert.strictEqual(typed._tag, "RateLimited")
      }))
  })
})
