/**
 * What the deploy tests share: running the operations tools (promtool,
 * systemd-analyze, the scripts) as real processes, and the names of the
 * metrics the daemon exports, as Prometheus sees them.
 */
import { Effect, Metric } from "effect"
import { execFile } from "node:child_process"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import * as Metrics from "../../src/services/Metrics.ts"

export const projectDir = Path.resolve(Path.dirname(fileURLToPath(import.meta.url)), "../..")
export const deployPath = (...parts: ReadonlyArray<string>) => Path.join(projectDir, "deploy", ...parts)

export interface Finished {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

/** Runs a command to its end; a non-zero exit is a result to assert on, not a failure. */
export const runCommand = (
  command: string,
  args: ReadonlyArray<string>,
  options: { readonly cwd?: string; readonly env?: Record<string, string> } = {}
): Effect.Effect<Finished> =>
  Effect.callback<Finished>((resume) => {
    const child = execFile(
      command,
      [...args],
      { cwd: options.cwd ?? projectDir, env: { ...process.env, ...options.env }, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === "number" ? error.code : 127
        resume(Effect.succeed({ code, stdout, stderr }))
      }
    )
    return Effect.sync(() => child.kill())
  })

/** Every series name the daemon can export: counters and gauges as named, histograms as their three series. */
export const gatewaySeriesNames: ReadonlySet<string> = new Set(
  Object.values(Metrics)
    .filter(Metric.isMetric)
    .flatMap((metric) =>
      metric.type === "Histogram"
        ? [`${metric.id}_bucket`, `${metric.id}_sum`, `${metric.id}_count`]
        : [metric.id]
    )
)

/**
 * Metric names in a PromQL expression: identifiers not followed by `(` (a
 * function), not inside `{...}` or `[...]`, and not a keyword or label.
 */
export const metricNamesIn = (expr: string): ReadonlyArray<string> => {
  const withoutSelectors = expr.replace(/\{[^}]*\}/g, " ").replace(/\[[^\]]*\]/g, " ").replace(/"[^"]*"/g, " ")
  const withoutGrouping = withoutSelectors.replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, " ")
  const keywords = new Set(["and", "or", "unless", "bool", "offset"])
  return [...withoutGrouping.matchAll(/\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()/g)]
    .map((match) => match[1]!)
    .filter((name) => !keywords.has(name) && !/^\d/.test(name) && !/^(Inf|NaN)$/i.test(name))
}

/** The daemon's own series among them: the ones named after a gateway metric family. */
export const gatewayPrefixes = ["events_", "ingest_", "tier_", "telegram_", "redis_failures", "rabbitmq_failures", "database_write"]
export const isGatewaySeries = (name: string) => gatewayPrefixes.some((prefix) => name.startsWith(prefix))

export interface AlertRule {
  readonly name: string
  readonly expr: string
  readonly runbook: string | undefined
}

/** The rules file's alerts: name, expression (inline or a `|` block) and runbook_url. */
export const readAlertRules = (text: string): ReadonlyArray<AlertRule> =>
  text.split(/^\s*- alert: /m).slice(1).map((block) => {
    const name = block.split("\n")[0]!.trim()
    const inline = /^\s*expr: (?!\|)(.+)$/m.exec(block)
    const folded = /^(\s*)expr: \|\n((?:\1\s+.*\n)+)/m.exec(block)
    const expr = inline?.[1] ?? folded?.[2] ?? ""
    const runbook = /runbook_url: "([^"]+)"/.exec(block)?.[1]
    return { name, expr: expr.trim(), runbook }
  })
