/**
 * deploy/scripts/health-check.sh against an HTTP endpoint that answers like
 * the daemon's: the readiness report typed as src/programs/Readiness.ts
 * builds it, the metrics rendered by Effect's Prometheus formatter from the
 * daemon's own metric definitions, the accounts' roles typed as
 * src/programs/Ownership.ts keeps them. Exit 0 ok, 1 degraded, 2 down.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Metric } from "effect"
import { PrometheusMetrics } from "effect/observability"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import type { AccountRole } from "../../src/programs/Ownership.ts"
import type { ReadinessReport } from "../../src/programs/Readiness.ts"
import * as Metrics from "../../src/services/Metrics.ts"
import { deployPath, runCommand } from "./Tools.ts"

const script = deployPath("scripts", "health-check.sh")

const tier = (up: boolean) => (up ? { up, latencyMs: 1.2 } : { up, latencyMs: 2000, error: "no answer within 2 seconds" })

const report = (tiers: { postgres: boolean; redis: boolean; rabbitmq: boolean }): ReadinessReport => ({
  status: !tiers.postgres ? "down" : tiers.redis && tiers.rabbitmq ? "ok" : "degraded",
  tiers: { postgres: tier(tiers.postgres), redis: tier(tiers.redis), rabbitmq: tier(tiers.rabbitmq) }
})

/** The daemon's three endpoints, answering with `ready` and the metrics as they are when a request comes. */
const gatewayLike = (ready: ReadinessReport, accounts: ReadonlyArray<AccountRole> = []) =>
  Effect.acquireRelease(
    Effect.callback<Http.Server>((resume) => {
      const server = Http.createServer((request, response) => {
        const reply = (status: number, body: string) => {
          response.writeHead(status, { "content-type": "text/plain" })
          response.end(body)
        }
        if (request.url === "/health/live") return reply(200, JSON.stringify({ status: "ok" }))
        if (request.url === "/health/ready") {
          return reply(ready.status === "down" ? 503 : 200, JSON.stringify({ ...ready, pendingWrites: 3, accounts }))
        }
        if (request.url === "/metrics") return void Effect.runPromise(PrometheusMetrics.format()).then((text) => reply(200, text))
        reply(404, "")
      })
      server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
    }),
    (server) => Effect.callback<void>((resume) => void server.close(() => resume(Effect.void)))
  ).pipe(Effect.map((server) => `http://127.0.0.1:${(server.address() as AddressInfo).port}`))

const healthCheck = (...args: ReadonlyArray<string>) => runCommand("bash", [script, "--timeout", "2", ...args])

const setTelegramConnected = (connected: boolean) =>
  Effect.all([Metric.update(Metrics.telegramConnected, connected ? 1 : 0), Metric.update(Metrics.writeQueueDepth, 7)])

const since = "2026-11-30T21:00:00.000Z"
const role = (account: string, kind: AccountRole["role"], owner: string | null, extra: Partial<AccountRole> = {}): AccountRole => ({
  account,
  role: kind,
  since,
  owner,
  ownerSince: owner === null ? null : since,
  epoch: 4,
  ...extra
})

describe("health-check.sh", () => {
  it.effect("is valid bash", () =>
    Effect.gen(function*() {
      const result = yield* runCommand("bash", ["-n", script])
      assert.strictEqual(result.code, 0, result.stderr)
    }))

  it.effect("says ok and exits 0 when every tier and Telegram are up", () =>
    Effect.gen(function*() {
      yield* setTelegramConnected(true)
      const url = yield* gatewayLike(report({ postgres: true, redis: true, rabbitmq: true }))
      const result = yield* healthCheck("--gateway", url, "--api", url)
      assert.strictEqual(result.code, 0, result.stdout)
      assert.include(result.stdout, "gateway ready: ok (postgres up, redis up, rabbitmq up)")
      assert.include(result.stdout, "telegram connected")
      assert.include(result.stdout, "write queue: 7 events waiting")
      assert.include(result.stdout, "API ready: ok")
      assert.match(result.stdout, /overall: ok\n$/)
    }).pipe(Effect.scoped))

  it.effect("says degraded and exits 1 when Redis is down", () =>
    Effect.gen(function*() {
      yield* setTelegramConnected(true)
      const url = yield* gatewayLike(report({ postgres: true, redis: false, rabbitmq: true }))
      const result = yield* healthCheck("--gateway", url, "--no-api")
      assert.strictEqual(result.code, 1, result.stdout)
      assert.include(result.stdout, "DEGRADED  gateway ready: degraded (postgres up, redis DOWN, rabbitmq up)")
      assert.notInclude(result.stdout, "API")
    }).pipe(Effect.scoped))

  it.effect("says degraded and exits 1 while Telegram is disconnected", () =>
    Effect.gen(function*() {
      yield* setTelegramConnected(false)
      const url = yield* gatewayLike(report({ postgres: true, redis: true, rabbitmq: true }))
      const result = yield* healthCheck("--gateway", url, "--no-api")
      assert.strictEqual(result.code, 1, result.stdout)
      assert.include(result.stdout, "telegram disconnected")
    }).pipe(Effect.scoped))

  it.effect("says down and exits 2 when the gateway cannot reach PostgreSQL", () =>
    Effect.gen(function*() {
      yield* setTelegramConnected(true)
      const url = yield* gatewayLike(report({ postgres: false, redis: true, rabbitmq: true }))
      const result = yield* healthCheck("--gateway", url, "--no-api")
      assert.strictEqual(result.code, 2, result.stdout)
      assert.include(result.stdout, "DOWN      gateway ready: down (postgres DOWN, redis up, rabbitmq up)")
      assert.match(result.stdout, /overall: down\n$/)
    }).pipe(Effect.scoped))

  it.effect("says down and exits 2 when nothing answers, and degraded for a missing API", () =>
    Effect.gen(function*() {
      // Port 9 (discard) is not served on 127.0.0.1 here: the connection is refused at once.
      const result = yield* healthCheck("--gateway", "http://127.0.0.1:9", "--api", "http://127.0.0.1:9")
      assert.strictEqual(result.code, 2, result.stdout)
      assert.include(result.stdout, "DOWN      gateway not answering at http://127.0.0.1:9/health/live")
      assert.include(result.stdout, "DEGRADED  API not answering")
    }))

  it.effect("rejects an unknown option with exit 3", () =>
    Effect.gen(function*() {
      const result = yield* healthCheck("--bogus")
      assert.strictEqual(result.code, 3)
      assert.include(result.stderr, "unknown option: --bogus")
    }))

  it.effect("shows this process's role for each account: an owner, and a standby with the owner it sees", () =>
    Effect.gen(function*() {
      yield* setTelegramConnected(true)
      const url = yield* gatewayLike(report({ postgres: true, redis: true, rabbitmq: true }), [
        role("news", "owner", "host-a:4242:1f2e3d4c"),
        role("sports", "standby", "host-b:777:0a0b0c0d")
      ])
      const result = yield* healthCheck("--gateway", url, "--no-api")
      assert.strictEqual(result.code, 0, result.stdout)
      assert.include(result.stdout, "OK        account news: owner\n")
      assert.include(result.stdout, "OK        account sports: standby, owned by host-b:777:0a0b0c0d\n")
      assert.include(result.stdout, "telegram connected")
    }).pipe(Effect.scoped))

  it.effect("a process standing by for every account is ok without a Telegram connection", () =>
    Effect.gen(function*() {
      yield* setTelegramConnected(false)
      const url = yield* gatewayLike(report({ postgres: true, redis: true, rabbitmq: true }), [
        role("default", "standby", "host-a:4242:1f2e3d4c")
      ])
      const result = yield* healthCheck("--gateway", url, "--no-api")
      assert.strictEqual(result.code, 0, result.stdout)
      assert.include(result.stdout, "OK        telegram not connected: this process owns no account")
    }).pipe(Effect.scoped))

  it.effect("says degraded for an account nobody owns or that needs a login, and down for a refused owned one", () =>
    Effect.gen(function*() {
      yield* setTelegramConnected(true)
      const loginNeeded = { reason: "SESSION_REVOKED", since }
      const degraded = yield* gatewayLike(report({ postgres: true, redis: true, rabbitmq: true }), [
        role("markets", "needs-login", null, { loginNeeded }),
        role("news", "owner", "host-a:4242:1f2e3d4c"),
        role("wire", "standby", null)
      ])
      const first = yield* healthCheck("--gateway", degraded, "--no-api")
      assert.strictEqual(first.code, 1, first.stdout)
      assert.include(
        first.stdout,
        "DEGRADED  account markets: needs login, Telegram refused its session (SESSION_REVOKED): run telegram-gateway login --account markets"
      )
      assert.include(first.stdout, "DEGRADED  account wire: standby, and nobody owns it now")

      const down = yield* gatewayLike({ ...report({ postgres: true, redis: true, rabbitmq: true }), status: "down" }, [
        role("news", "failed", "host-a:4242:1f2e3d4c", { detail: "TelegramFatal: {SESSION_REVOKED}", loginNeeded })
      ])
      const second = yield* healthCheck("--gateway", down, "--no-api")
      assert.strictEqual(second.code, 2, second.stdout)
      assert.include(second.stdout, "DOWN      account news: failed, Telegram refused its session (SESSION_REVOKED)")
    }).pipe(Effect.scoped))
})
