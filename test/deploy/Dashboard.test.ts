/**
 * The Grafana dashboard (deploy/grafana/dashboards/telegram-gateway.json) and
 * its data source: every query is valid PromQL (promtool parses each one as a
 * recording rule), names metrics the daemon really exports, and the panels
 * operators need are there.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Fs from "node:fs/promises"
import * as Os from "node:os"
import * as Path from "node:path"
import { deployPath, gatewaySeriesNames, isGatewaySeries, metricNamesIn, readAlertRules, runCommand } from "./Tools.ts"

interface Panel {
  readonly type: string
  readonly title: string
  readonly datasource?: { readonly uid: string }
  readonly targets?: ReadonlyArray<{ readonly expr?: string }>
}

interface Dashboard {
  readonly uid: string
  readonly panels: ReadonlyArray<Panel>
  readonly templating: { readonly list: ReadonlyArray<{ readonly name: string; readonly current?: { readonly value: string } }> }
}

const readDashboard = Effect.promise(() => Fs.readFile(deployPath("grafana", "dashboards", "telegram-gateway.json"), "utf8")).pipe(
  Effect.map((text) => JSON.parse(text) as Dashboard)
)

/** The PromQL queries of a dashboard (SQL targets of other data sources left out). */
const queries = (dashboard: Dashboard) =>
  dashboard.panels.flatMap((panel) =>
    (panel.targets ?? []).flatMap((target) => (target.expr === undefined ? [] : [{ panel: panel.title, expr: target.expr }]))
  )

/** Grafana's variables replaced by values Prometheus accepts. */
const asPromQL = (expr: string) => expr.replaceAll("$__rate_interval", "1m").replaceAll("$instance", ".*")

/** promtool parses every query, each written as a recording rule. */
const promtoolAccepts = (all: ReadonlyArray<{ readonly expr: string }>) =>
  Effect.gen(function*() {
    const directory = yield* Effect.acquireRelease(
      Effect.promise(() => Fs.mkdtemp(Path.join(Os.tmpdir(), "dashboards-"))),
      (path) => Effect.promise(() => Fs.rm(path, { recursive: true, force: true }))
    )
    const rules = [
      "groups:",
      "  - name: dashboards",
      "    rules:",
      ...all.flatMap((query, index) => [`      - record: dashboard:query_${index}`, `        expr: ${JSON.stringify(asPromQL(query.expr))}`])
    ].join("\n")
    const file = Path.join(directory, "dashboard-queries.yml")
    yield* Effect.promise(() => Fs.writeFile(file, rules + "\n"))
    const result = yield* runCommand("promtool", ["check", "rules", file])
    assert.strictEqual(result.code, 0, result.stdout + result.stderr)
    assert.include(result.stdout, `SUCCESS: ${all.length} rules found`)
  }).pipe(Effect.scoped)

describe("the Grafana dashboard", () => {
  it.effect("has only valid PromQL queries", () =>
    Effect.gen(function*() {
      const all = queries(yield* readDashboard)
      assert.isAbove(all.length, 15)
      yield* promtoolAccepts(all)
    }))

  it.effect("only queries gateway metrics the daemon exports", () =>
    Effect.gen(function*() {
      for (const query of queries(yield* readDashboard)) {
        const names = metricNamesIn(query.expr)
        assert.isNotEmpty(names, `${query.panel}: ${query.expr}`)
        for (const name of names.filter(isGatewaySeries)) {
          assert.isTrue(gatewaySeriesNames.has(name), `${query.panel} queries ${name}, which src/services/Metrics.ts does not export`)
        }
      }
    }))

  it.effect("shows ingest by kind, latency percentiles, queue depth, tiers, failures and the Telegram connection", () =>
    Effect.gen(function*() {
      const exprs = queries(yield* readDashboard).map((query) => query.expr)
      const shown = (pattern: RegExp) => assert.isTrue(exprs.some((expr) => pattern.test(expr)), `no panel queries ${pattern}`)
      shown(/sum by \(kind\) \(rate\(events_received_total/)
      for (const histogram of ["ingest_hot_path_seconds", "ingest_commit_seconds"]) {
        for (const quantile of ["0.5", "0.95", "0.99"]) {
          shown(new RegExp(`histogram_quantile\\(${quantile}, .*${histogram}_bucket`))
        }
      }
      shown(/^ingest_queue_depth\{/)
      shown(/^tier_up\{/)
      for (const counter of ["redis_failures_total", "rabbitmq_failures_total", "database_write_failures_total", "events_rejected_total"]) {
        shown(new RegExp(`rate\\(${counter}\\{`))
      }
      shown(/^telegram_connected\{/)
      shown(/telegram_reconnects_total/)
      shown(/telegram_flood_waits_total/)
    }))

  it.effect("defaults to the provisioned data source", () =>
    Effect.gen(function*() {
      const dashboard = yield* readDashboard
      const provisioning = yield* Effect.promise(() =>
        Fs.readFile(deployPath("grafana", "provisioning", "datasources", "telegram.yml"), "utf8")
      )
      const uid = /^\s*uid: (\S+)$/m.exec(provisioning)?.[1]
      const variable = dashboard.templating.list.find((entry) => entry.name === "datasource")
      assert.strictEqual(variable?.current?.value, uid)
      for (const panel of dashboard.panels.filter((panel) => panel.type !== "row")) {
        assert.strictEqual(panel.datasource?.uid, "${datasource}", panel.title)
      }
    }))
})

const readAllDashboards = Effect.promise(async () => {
  const directory = deployPath("grafana", "dashboards")
  const files = (await Fs.readdir(directory)).filter((file) => file.endsWith(".json")).sort()
  return Promise.all(files.map(async (file) => ({
    file,
    dashboard: JSON.parse(await Fs.readFile(Path.join(directory, file), "utf8")) as Dashboard & { readonly title: string }
  })))
})

describe("the provisioned dashboards and data sources", () => {
  it.effect("are the six of the stack over three data sources, each panel on a provisioned one", () =>
    Effect.gen(function*() {
      const all = yield* readAllDashboards
      assert.deepStrictEqual(all.map(({ file }) => file), [
        "telegram-gateway.json",
        "telegram-mtproto.json",
        "telegram-overview.json",
        "telegram-postgresql.json",
        "telegram-rabbitmq.json",
        "telegram-redis.json",
        "telegram-slo.json"
      ])
      assert.strictEqual(new Set(all.map(({ dashboard }) => dashboard.uid)).size, all.length, "unique uids")
      const provisioning = yield* Effect.promise(() =>
        Fs.readFile(deployPath("grafana", "provisioning", "datasources", "telegram.yml"), "utf8")
      )
      const uids = new Set([...provisioning.matchAll(/^\s*uid: (\S+)$/gm)].map((match) => match[1]!))
      const types = [...provisioning.matchAll(/^\s*type: (\S+)$/gm)].map((match) => match[1]!)
      assert.deepStrictEqual(types, ["prometheus", "grafana-postgresql-datasource", "alertmanager"])
      const used = new Set<string>()
      for (const { file, dashboard } of all) {
        for (const panel of dashboard.panels.filter((panel) => panel.type !== "row")) {
          const uid = panel.datasource?.uid
          assert.isDefined(uid, `${file}: ${panel.title}`)
          assert.isTrue(uid === "${datasource}" || uids.has(uid!), `${file}: ${panel.title} uses ${uid}`)
          used.add(uid === "${datasource}" ? "telegram-prometheus" : uid!)
        }
      }
      assert.deepStrictEqual([...used].sort(), [...uids].sort(), "every data source is used by a panel")
    }))

  it.effect("show storage upkeep on the PostgreSQL dashboard: the age of each task's last success against the alert's 13 hours, and its failures", () =>
    Effect.gen(function*() {
      const postgres = (yield* readAllDashboards).find(({ file }) => file === "telegram-postgresql.json")!.dashboard
      const exprs = queries(postgres).map((query) => query.expr)
      assert.isTrue(exprs.some((expr) => /^time\(\) - \(storage_maintenance_last_success_timestamp_seconds\{.*\} > 0\)$/.test(expr)), exprs.join("\n"))
      assert.isTrue(exprs.some((expr) => /sum by \(task\) \(increase\(storage_maintenance_failures_total\{/.test(expr)))
      const since = postgres.panels.find((panel) => panel.title === "Since the last successful upkeep") as Panel & {
        readonly fieldConfig: { readonly defaults: { readonly thresholds: { readonly steps: ReadonlyArray<{ readonly value: number | null }> } } }
      }
      const alerts = yield* Effect.promise(() => Fs.readFile(deployPath("prometheus", "telegram-alerts.yml"), "utf8"))
      const stalled = readAlertRules(alerts).find((rule) => rule.name === "TelegramStorageMaintenanceStalled")!
      const hours = Number(/> (\d+) \* 3600/.exec(stalled.expr)![1])
      assert.deepStrictEqual(since.fieldConfig.defaults.thresholds.steps.map((step) => step.value), [null, hours * 3600])
    }))

  it.effect("query Prometheus with valid PromQL only", () =>
    Effect.gen(function*() {
      const all = (yield* readAllDashboards).flatMap(({ dashboard }) => queries(dashboard))
      assert.isAbove(all.length, 60)
      yield* promtoolAccepts(all)
    }))
})
