/**
 * The alert rules (deploy/prometheus/telegram-alerts.yml) and the Prometheus
 * config, checked with promtool: valid, each alert fired and kept quiet by its
 * unit tests, written against metrics the daemon really exports, and each
 * linked to a runbook that exists in docs/operations.md.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Fs from "node:fs/promises"
import * as Os from "node:os"
import * as Path from "node:path"
import { deployPath, gatewaySeriesNames, isGatewaySeries, metricNamesIn, projectDir, readAlertRules, runCommand } from "./Tools.ts"

const rulesFile = deployPath("prometheus", "telegram-alerts.yml")
const rulesTestFile = deployPath("prometheus", "telegram-alerts.test.yml")

/** Per alert name, whether the unit tests expect it firing somewhere and quiet somewhere. */
const readExpectations = (text: string) => {
  const firing = new Set<string>()
  const quiet = new Set<string>()
  for (const match of text.matchAll(/alertname: (\w+)\n\s*exp_alerts:( \[\])?/g)) {
    ;(match[2] === undefined ? firing : quiet).add(match[1]!)
  }
  return { firing, quiet }
}

/** GitHub-style anchors of the headings in docs/operations.md. */
const operationsAnchors = Effect.promise(() => Fs.readFile(Path.join(projectDir, "docs", "operations.md"), "utf8")).pipe(
  Effect.map((text) =>
    new Set(
      [...text.matchAll(/^#{1,6} (.+)$/gm)].map((match) =>
        match[1]!.trim().toLowerCase().replace(/[^\w\- ]/g, "").replace(/ /g, "-")
      )
    )
  )
)

const rules = Effect.promise(() => Fs.readFile(rulesFile, "utf8")).pipe(Effect.map(readAlertRules))

describe("Prometheus alert rules", () => {
  it.effect("are valid rules for promtool", () =>
    Effect.gen(function*() {
      const result = yield* runCommand("promtool", ["check", "rules", rulesFile])
      assert.strictEqual(result.code, 0, result.stdout + result.stderr)
      assert.include(result.stdout, "SUCCESS")
    }))

  it.effect("pass their promtool unit tests", () =>
    Effect.gen(function*() {
      const result = yield* runCommand("promtool", ["test", "rules", rulesTestFile])
      assert.strictEqual(result.code, 0, result.stdout + result.stderr)
    }))

  it.effect("cover the eight alerts of the spec, and more", () =>
    Effect.gen(function*() {
      const names = (yield* rules).map((rule) => rule.name)
      for (
        const expected of [
          "TelegramGatewayDown",
          "TelegramGatewayHighCommitLatency",
          "TelegramGatewayRedisDown",
          "PgBouncerPoolExhausted",
          "TelegramGatewayQueueBuilding",
          "RedisLowHitRate",
          "TelegramGatewayRedisFailures",
          "HostDiskSpaceLow",
          "HostMemoryHigh"
        ]
      ) assert.include(names, expected)
    }))

  it.effect("are each fired by one unit test and kept quiet by another", () =>
    Effect.gen(function*() {
      const { firing, quiet } = readExpectations(yield* Effect.promise(() => Fs.readFile(rulesTestFile, "utf8")))
      for (const rule of yield* rules) {
        assert.isTrue(firing.has(rule.name), `${rule.name} is never expected to fire`)
        assert.isTrue(quiet.has(rule.name), `${rule.name} is never expected to stay quiet`)
      }
    }))

  it.effect("only use gateway metrics the daemon exports", () =>
    Effect.gen(function*() {
      for (const rule of yield* rules) {
        for (const name of metricNamesIn(rule.expr).filter(isGatewaySeries)) {
          assert.isTrue(gatewaySeriesNames.has(name), `${rule.name} uses ${name}, which src/services/Metrics.ts does not export`)
        }
      }
    }))

  it.effect("each link a runbook section of docs/operations.md", () =>
    Effect.gen(function*() {
      const anchors = yield* operationsAnchors
      for (const rule of yield* rules) {
        const runbook = rule.runbook ?? ""
        assert.match(runbook, /^file:\/\/\/opt\/telegram-gateway\/docs\/operations\.md#/, `${rule.name} has no runbook_url`)
        const anchor = runbook.split("#")[1]!
        assert.isTrue(anchors.has(anchor), `${rule.name}: docs/operations.md has no heading for #${anchor}`)
      }
    }))

  it.effect("unit tests notice a broken threshold", () =>
    Effect.gen(function*() {
      // The same rules with the queue alert's threshold raised tenfold must fail their tests.
      const directory = yield* Effect.acquireRelease(
        Effect.promise(() => Fs.mkdtemp(Path.join(Os.tmpdir(), "alerts-"))),
        (path) => Effect.promise(() => Fs.rm(path, { recursive: true, force: true }))
      )
      const broken = (yield* Effect.promise(() => Fs.readFile(rulesFile, "utf8"))).replace(
        "ingest_queue_depth{job=\"telegram-gateway\"} > 5000",
        "ingest_queue_depth{job=\"telegram-gateway\"} > 50000"
      )
      yield* Effect.promise(() => Fs.writeFile(Path.join(directory, "telegram-alerts.yml"), broken))
      yield* Effect.promise(() => Fs.copyFile(rulesTestFile, Path.join(directory, "telegram-alerts.test.yml")))
      const result = yield* runCommand("promtool", ["test", "rules", Path.join(directory, "telegram-alerts.test.yml")])
      assert.notStrictEqual(result.code, 0)
      assert.include(result.stdout + result.stderr, "TelegramGatewayQueueBuilding")
    }).pipe(Effect.scoped))
})

describe("Prometheus config", () => {
  it.effect("is valid, loads the alert rules and scrapes the gateway, the API and the exporters", () =>
    Effect.gen(function*() {
      const config = deployPath("prometheus", "prometheus.yml")
      const result = yield* runCommand("promtool", ["check", "config", config])
      assert.strictEqual(result.code, 0, result.stdout + result.stderr)
      assert.include(result.stdout, "1 rule files found")
      const text = yield* Effect.promise(() => Fs.readFile(config, "utf8"))
      for (const target of ["127.0.0.1:4007", "127.0.0.1:4010", "127.0.0.1:9121", "127.0.0.1:9187", "127.0.0.1:15692", "127.0.0.1:9100"]) {
        assert.include(text, `"${target}"`)
      }
      assert.include(text, "job_name: telegram-gateway\n")
    }))
})
