/**
 * Every metric an alert rule or a Grafana panel uses is exported by something
 * the project runs or configures. The exporters run for real, on spare ports,
 * with the settings of deploy/exporters/ (Debian's prometheus-postgres-exporter
 * with the custom queries, -redis-exporter, -node-exporter), RabbitMQ's
 * endpoint is scraped where
 * stack.sh enabled it, and the daemon's and the API's series are the ones
 * test/deploy/Metrics.test.ts scrapes from the real processes.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Metric, Schedule } from "effect"
import { spawn } from "node:child_process"
import * as Fs from "node:fs/promises"
import * as Path from "node:path"
import * as PgBouncerPools from "../../src/programs/PgBouncerPools.ts"
import * as ProcessMetrics from "../../src/programs/ProcessMetrics.ts"
import * as ApiMetrics from "../../src/services/ApiMetrics.ts"
import * as Metrics from "../../src/services/Metrics.ts"
import { makeTestDatabase } from "../support/Database.ts"
import { deployPath, metricNamesIn, readAlertRules } from "./Tools.ts"

/** Series names of metric modules: histograms as their three series. */
const seriesOf = (modules: ReadonlyArray<Record<string, unknown>>) =>
  modules.flatMap((module) =>
    Object.values(module).flatMap((value) =>
      Metric.isMetric(value) ? [value] : typeof value === "object" && value !== null ? Object.values(value).filter(Metric.isMetric) : []
    )
  ).flatMap((metric) =>
    metric.type === "Histogram" ? [`${metric.id}_bucket`, `${metric.id}_sum`, `${metric.id}_count`] : [metric.id]
  )

/** Prometheus's own series, present for every job. */
const prometheusSeries = ["up", "ALERTS", "scrape_duration_seconds"]

const startExporter = (command: string, args: ReadonlyArray<string>, env: Record<string, string> = {}) =>
  Effect.acquireRelease(
    Effect.sync(() => spawn(command, [...args], { env: { ...process.env, ...env }, stdio: "ignore" })),
    (child) =>
      Effect.promise(async () => {
        if (child.exitCode !== null || child.signalCode !== null) return
        const exited = new Promise((resolve) => child.once("exit", resolve))
        child.kill("SIGTERM")
        await exited
      })
  )

/** The sample names of one /metrics endpoint, once it answers. */
const scrapeNames = (address: string) =>
  Effect.promise(() =>
    fetch(`http://${address}/metrics`, { signal: AbortSignal.timeout(10_000) }).then(
      async (response) => (response.ok ? await response.text() : undefined),
      () => undefined
    )
  ).pipe(
    Effect.repeat({ until: (body) => body !== undefined && body.includes("\n"), schedule: Schedule.spaced("200 millis") }),
    Effect.timeoutOrElse({ duration: "30 seconds", orElse: () => Effect.die(new Error(`${address}/metrics never answered`)) }),
    Effect.map((body) =>
      body!.split("\n").filter((line) => line !== "" && !line.startsWith("#")).map((line) => /^[^{\s]+/.exec(line)![0])
    )
  )

interface Dashboard {
  readonly title: string
  readonly panels: ReadonlyArray<{ readonly title: string; readonly targets?: ReadonlyArray<{ readonly expr?: string }> }>
}

const dashboards = Effect.promise(async () => {
  const directory = deployPath("grafana", "dashboards")
  const files = (await Fs.readdir(directory)).filter((file) => file.endsWith(".json"))
  return Promise.all(files.map(async (file) => JSON.parse(await Fs.readFile(Path.join(directory, file), "utf8")) as Dashboard))
})

describe("metrics used by alerts and dashboards", () => {
  it.live("are all exported by the daemon, the API or an exporter the project configures", () =>
    Effect.gen(function*() {
      const database = yield* makeTestDatabase("coverage")
      yield* startExporter("prometheus-postgres-exporter", [
        "--web.listen-address=127.0.0.1:21187",
        `--extend.query-path=${deployPath("exporters", "postgres-exporter-queries.yml")}`
      ], {
        DATA_SOURCE_NAME: `postgresql://telegram_gateway:telegram_gateway@127.0.0.1:5432/${database.name}?sslmode=disable`
      })
      yield* startExporter("prometheus-redis-exporter", ["-redis.addr=redis://127.0.0.1:6379", "-web.listen-address=127.0.0.1:21121"])
      // No PgBouncer exporter: Debian 12's fails on SHOW STATS (deploy/prometheus/prometheus.yml);
      // the daemon's pgbouncer_pools_* stand in for it.
      yield* startExporter("prometheus-node-exporter", ["--web.listen-address=127.0.0.1:21100"])

      const exported = new Set<string>([
        ...seriesOf([Metrics, ProcessMetrics, ApiMetrics, PgBouncerPools]),
        ...prometheusSeries
      ])
      for (const address of ["127.0.0.1:21187", "127.0.0.1:21121", "127.0.0.1:21100", "127.0.0.1:15692"]) {
        for (const name of yield* scrapeNames(address)) exported.add(name)
      }
      // The custom queries answered: the exporter loaded deploy/exporters/postgres-exporter-queries.yml.
      assert.isTrue(exported.has("telegram_backlog_unprocessed_versions"))

      const uses: Array<{ readonly where: string; readonly expr: string }> = []
      const rules = readAlertRules(yield* Effect.promise(() => Fs.readFile(deployPath("prometheus", "telegram-alerts.yml"), "utf8")))
      for (const rule of rules) uses.push({ where: `alert ${rule.name}`, expr: rule.expr })
      for (const dashboard of yield* dashboards) {
        for (const panel of dashboard.panels) {
          for (const target of panel.targets ?? []) {
            if (target.expr !== undefined) uses.push({ where: `${dashboard.title} / ${panel.title}`, expr: target.expr })
          }
        }
      }
      assert.isAbove(uses.length, 20)
      const missing = uses.flatMap((use) =>
        metricNamesIn(use.expr).filter((name) => !exported.has(name)).map((name) => `${use.where}: ${name}`)
      )
      assert.deepStrictEqual(missing, [])
    }).pipe(Effect.scoped), 120_000)
})
