/**
 * `/metrics` of the two processes as Prometheus scrapes them, from real
 * processes: `telegram-gateway run` freshly started against the Telegram
 * simulator lists every metric of src/services/Metrics.ts (the failure
 * counters at 0) and the process metrics; `telegram-gateway-api` counts its
 * requests by route and status, authentication failures, rate-limited
 * requests and long polls in flight.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Metric, Redacted, Schedule } from "effect"
import { spawn } from "node:child_process"
import { createHash } from "node:crypto"
import { fileURLToPath } from "node:url"
import { writeSession } from "../../src/layers/SessionFile.ts"
import { startSeries } from "../../src/programs/MetricsAtStart.ts"
import * as ProcessMetrics from "../../src/programs/ProcessMetrics.ts"
import * as ApiMetrics from "../../src/services/ApiMetrics.ts"
import * as Metrics from "../../src/services/Metrics.ts"
import { TelegramSimulator } from "../../src/simulator/index.ts"
import { makeTestDatabase } from "../support/Database.ts"
import { freePort, simulatorEnv, startGatewayProcess } from "../support/GatewayProcess.ts"
import { uniqueName } from "../support/TestGateway.ts"
import { makeSessionDirectory } from "../telegram/Harness.ts"

const apiBin = fileURLToPath(new URL("../../src/bin/telegram-gateway-api.ts", import.meta.url))

/** Samples of a Prometheus text body: `name{labels}` to value. */
const samples = (body: string): Map<string, number> =>
  new Map(
    body.split("\n").filter((line) => line !== "" && !line.startsWith("#")).map((line) => {
      const space = line.lastIndexOf(" ")
      return [line.slice(0, space), Number(line.slice(space + 1))] as const
    })
  )

/** The sample name Prometheus shows for a series registered at start. */
const sampleName = (metric: Metric.Metric<never, unknown>, attributes: Record<string, string>) => {
  const name = metric.type === "Histogram" ? `${metric.id}_count` : metric.id
  const labels = Object.entries(attributes).map(([key, value]) => `${key}="${value}"`)
  return labels.length === 0 ? name : `${name}{${labels.join(",")}}`
}

const scrape = (port: number, path = "/metrics", headers: Record<string, string> = {}) =>
  Effect.promise(() =>
    fetch(`http://127.0.0.1:${port}${path}`, { headers, signal: AbortSignal.timeout(10_000) }).then(
      async (response) => ({ status: response.status, body: await response.text() }),
      () => undefined
    )
  )

const waitForAnswer = (port: number) =>
  scrape(port, "/health/live").pipe(
    Effect.repeat({ until: (response) => response?.status === 200, schedule: Schedule.spaced("100 millis") }),
    Effect.timeout("60 seconds")
  )

describe("metrics of a freshly started daemon", () => {
  it.live("lists every gateway metric from the first scrape, failure counters at 0, and the process metrics", () =>
    Effect.gen(function*() {
      const simulator = yield* TelegramSimulator.start()
      simulator.world.addChannel({ username: "metrics_fresh", title: "Metrics", kind: "channel" })
      const sessionFile = yield* makeSessionDirectory
      yield* writeSession(sessionFile, Redacted.make(simulator.sessionString))
      const database = yield* makeTestDatabase("metrics")
      const gateway = yield* startGatewayProcess({
        env: {
          DATABASE_URL: Redacted.value(database.url),
          REDIS_KEY_PREFIX: `${uniqueName("tgmetrics")}:`,
          RABBITMQ_EXCHANGE: uniqueName("metrics.messages"),
          ...simulatorEnv(simulator, sessionFile, "@metrics_fresh")
        }
      })
      yield* waitForAnswer(gateway.httpPort)
      const response = yield* scrape(gateway.httpPort)
      assert.strictEqual(response?.status, 200)
      const found = samples(response!.body)

      for (const [metric, attributes] of startSeries([Metrics])) {
        const name = sampleName(metric, attributes)
        assert.isTrue(found.has(name), `${name} is exported from the start:\n${response!.body}`)
      }
      for (const failures of ["redis_failures_total", "rabbitmq_failures_total", "database_write_failures_total", "telegram_malformed_updates_total", "events_rejected_total{reason=\"malformed\"}", "events_rejected_total{reason=\"database\"}", "events_rejected_total{reason=\"relay\"}"]) {
        assert.strictEqual(found.get(failures), 0, failures)
      }
      assert.isFalse(found.has("tier_up"), "tier_up only with its tier label")

      assert.isAbove(found.get("process_resident_memory_bytes") ?? 0, 10_000_000)
      assert.isAbove(found.get("nodejs_heap_used_bytes") ?? 0, 0)
      assert.isAbove(found.get("process_cpu_seconds_total") ?? 0, 0)
      assert.isTrue(found.has("nodejs_eventloop_delay_p99_seconds"))
      assert.isTrue(found.has("nodejs_gc_duration_seconds_count{kind=\"major\"}"))
      for (const metric of Object.values(ProcessMetrics).filter((value) => Metric.isMetric(value)) as Array<Metric.Metric<never, unknown>>) {
        assert.isTrue([...found.keys()].some((key) => key.startsWith(metric.id)), `${metric.id} is exported`)
      }

      gateway.kill("SIGTERM")
      assert.strictEqual(yield* gateway.exited, 0)
    }).pipe(Effect.scoped), 120_000)
})

const hash = (key: string) => createHash("sha256").update(key).digest("hex")

describe("metrics of the API", () => {
  it.live("counts requests by route and status, authentication failures, rate limiting and long polls waiting", () =>
    Effect.gen(function*() {
      const database = yield* makeTestDatabase("apimetrics")
      const port = yield* freePort
      const child = yield* Effect.acquireRelease(
        Effect.sync(() =>
          spawn(process.execPath, ["--import", "tsx", apiBin], {
            env: {
              ...process.env,
              API_PORT: String(port),
              API_KEYS: [
                `reader:${hash("reader-secret-0123")}:read`,
                `poller:${hash("poller-secret-0123")}:read`,
                `nobody:${hash("nobody-secret-0123")}:ack`
              ].join(","),
              API_RATE_LIMIT_PER_SECOND: "1",
              API_RATE_LIMIT_BURST: "3",
              API_LONG_POLL_INTERVAL: "50 millis",
              DATABASE_URL: Redacted.value(database.url),
              REDIS_KEY_PREFIX: `${uniqueName("tgapimetrics")}:`,
              RABBITMQ_EXCHANGE: uniqueName("apimetrics.messages")
            },
            stdio: ["ignore", "pipe", "pipe"]
          })
        ),
        (child) => Effect.sync(() => child.exitCode === null && child.kill("SIGKILL"))
      )
      let output = ""
      child.stdout!.on("data", (chunk) => output += chunk)
      child.stderr!.on("data", (chunk) => output += chunk)
      const exited = Effect.promise(() =>
        new Promise<number | null>((resolve) => child.exitCode !== null ? resolve(child.exitCode) : child.on("exit", resolve))
      )
      yield* waitForAnswer(port).pipe(Effect.catch(() => Effect.die(new Error(`the API did not start:\n${output}`))))

      const fresh = samples((yield* scrape(port))!.body)
      for (const [metric, attributes] of startSeries([ApiMetrics])) {
        assert.isTrue(fresh.has(sampleName(metric, attributes)), `${sampleName(metric, attributes)} from the start`)
      }
      assert.strictEqual(fresh.get("api_rate_limited_total"), 0)
      assert.strictEqual(fresh.get("api_auth_failures_total{reason=\"unauthenticated\"}"), 0)
      assert.isAbove(fresh.get("process_resident_memory_bytes") ?? 0, 0)

      assert.strictEqual((yield* scrape(port, "/api/v1/channels"))?.status, 401)
      assert.strictEqual((yield* scrape(port, "/api/v1/channels", { "x-api-key": "nobody-secret-0123" }))?.status, 403)
      assert.strictEqual((yield* scrape(port, "/api/v1/channels", { "x-api-key": "reader-secret-0123" }))?.status, 200)
      // An unknown channel: 404, labelled with the route's pattern, not the id.
      assert.strictEqual((yield* scrape(port, "/api/v1/channels/12345/recent", { "x-api-key": "reader-secret-0123" }))?.status, 404)
      // The reader's third token, then its bucket (burst 3, one more per second) is empty.
      assert.strictEqual((yield* scrape(port, "/api/v1/channels", { "x-api-key": "reader-secret-0123" }))?.status, 200)
      assert.strictEqual((yield* scrape(port, "/api/v1/channels", { "x-api-key": "reader-secret-0123" }))?.status, 429)
      assert.strictEqual((yield* scrape(port, "/no/such/path"))?.status, 404)

      // A long poll, waiting while nothing is stored.
      const poll = yield* scrape(port, "/api/v1/messages?wait=5", { "x-api-key": "poller-secret-0123" }).pipe(
        Effect.forkScoped
      )
      const counted = yield* scrape(port).pipe(
        Effect.map((response) => samples(response!.body)),
        Effect.repeat({
          until: (found) => found.get("api_long_polls_waiting") === 1,
          schedule: Schedule.spaced("50 millis")
        }),
        Effect.timeout("10 seconds")
      )
      assert.strictEqual(counted.get("api_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"}"), 1)
      assert.strictEqual(counted.get("api_requests_total{method=\"GET\",route=\"/api/v1/channels\",status=\"401\"}"), 1)
      assert.strictEqual(counted.get("api_requests_total{method=\"GET\",route=\"/api/v1/channels\",status=\"403\"}"), 1)
      assert.strictEqual(counted.get("api_requests_total{method=\"GET\",route=\"/api/v1/channels\",status=\"200\"}"), 2)
      assert.strictEqual(
        counted.get("api_requests_total{method=\"GET\",route=\"/api/v1/channels/:channelId/recent\",status=\"404\"}"),
        1
      )
      assert.strictEqual(counted.get("api_requests_total{method=\"GET\",route=\"/api/v1/channels\",status=\"429\"}"), 1)
      assert.strictEqual(counted.get("api_request_duration_seconds_count{method=\"GET\",route=\"/api/v1/channels\",status=\"200\"}"), 2)
      assert.strictEqual(counted.get("api_auth_failures_total{reason=\"unauthenticated\"}"), 1)
      assert.strictEqual(counted.get("api_auth_failures_total{reason=\"forbidden\"}"), 1)
      assert.strictEqual(counted.get("api_rate_limited_total"), 1)
      assert.strictEqual((yield* Fiber.join(poll))?.status, 200)
      const after = samples((yield* scrape(port))!.body)
      assert.strictEqual(after.get("api_long_polls_waiting"), 0)
      assert.strictEqual(after.get("api_requests_total{method=\"GET\",route=\"/api/v1/messages\",status=\"200\"}"), 1)

      child.kill("SIGTERM")
      assert.strictEqual(yield* exited, 0, output)
    }).pipe(Effect.scoped), 120_000)
})
