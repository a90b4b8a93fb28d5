import { assert, describe, layer } from "@effect/vitest"
import { Effect } from "effect"
import { HttpClient } from "effect/http"
import { layerTestApi, TestApi } from "./TestApi.ts"

const get = (path: string) =>
  Effect.gen(function*() {
    const http = yield* HttpClient.HttpClient
    const response = yield* http.get(path)
    return { status: response.status, text: yield* response.text, type: response.headers["content-type"] ?? "" }
  })

const readiness = get("/health/ready").pipe(
  Effect.map((r) => ({ status: r.status, body: JSON.parse(r.text) as { status: string; tiers: Record<string, string> } }))
)

/** RabbitMQ connects in the background, and one answer serves every caller for a second: wait for `status`. */
const untilStatus = (status: string) =>
  Effect.gen(function*() {
    for (let attempt = 0; attempt < 50; attempt++) {
      const answer = yield* readiness
      if (answer.body.status === status) return answer
      yield* Effect.sleep("100 millis")
    }
    return yield* readiness
  })

describe("Gateway API health and documents", () => {
  layer(layerTestApi(), { timeout: "60 seconds", excludeTestServices: true })((it) => {
    it.effect("reports each tier: Redis down is degraded (200), PostgreSQL down is down (503)", () =>
      Effect.gen(function*() {
        assert.strictEqual((yield* get("/health/live")).status, 200)
        const ok = yield* untilStatus("ok")
        assert.strictEqual(ok.status, 200)
        const { postgres, redis } = yield* TestApi
        yield* redis.cut
        const degraded = yield* untilStatus("degraded")
        yield* redis.restore
        assert.deepStrictEqual([degraded.status, degraded.body.status], [200, "degraded"])
        assert.deepStrictEqual(degraded.body.tiers, { postgres: "up", redis: "down", rabbitmq: "up" }, "no error texts")
        yield* untilStatus("ok")
        yield* postgres.cut
        const down = yield* untilStatus("down")
        yield* postgres.restore
        assert.deepStrictEqual([down.status, down.body.status], [503, "down"])
        assert.deepStrictEqual(down.body.tiers, { postgres: "down", redis: "up", rabbitmq: "up" })
      }))

    it.effect("serves the OpenAPI document, an offline docs page and Prometheus metrics without a key", () =>
      Effect.gen(function*() {
        const openapi = yield* get("/openapi.json")
        const spec = JSON.parse(openapi.text) as { paths: Record<string, unknown>; components: { securitySchemes: Record<string, unknown> } }
        assert.includeMembers(Object.keys(spec.paths), ["/api/v1/messages", "/api/v1/consumers/{consumer}/processed"])
        assert.deepStrictEqual(Object.values(spec.components.securitySchemes), [{ type: "apiKey", name: "X-API-Key", in: "header", description: "An API key; the server keeps only its SHA-256 (see docs/api.md)" }])
        const docs = yield* get("/docs")
        assert.include(docs.type, "text/html")
        assert.include(docs.text, "/api/v1/consumers/{consumer}/checkpoint")
        assert.notMatch(docs.text, /<script|https?:\/\/cdn/i)
        const metrics = yield* get("/metrics")
        assert.strictEqual(metrics.status, 200)
      }))
  })

  layer(layerTestApi({ publicRateLimit: { perSecond: 1, burst: 2 } }), { timeout: "60 seconds", excludeTestServices: true })((it) => {
    it.effect("rate-limits the endpoints without a key per client address, in the JSON error shape", () =>
      Effect.gen(function*() {
        const statuses: Array<number> = []
        for (let i = 0; i < 3; i++) statuses.push((yield* get("/health/live")).status)
        assert.deepStrictEqual(statuses, [200, 200, 429])
        const http = yield* HttpClient.HttpClient
        const limited = yield* http.get("/metrics")
        assert.strictEqual(limited.status, 429)
        assert.isDefined(limited.headers["retry-after"])
        // Readiness too: a flood of it is refused before it reaches a tier.
        assert.strictEqual((yield* get("/health/ready")).status, 429)
        const body = (yield* limited.json) as { code: string; message: string }
        assert.strictEqual(body.code, "rate_limited")
        assert.match(body.message, /rate limit of 1 requests\/s/)
      }))
  })
})
