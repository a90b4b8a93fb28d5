/**
 * Registers every metric of the given modules at its zero value when the
 * process starts, so `/metrics` lists each failure counter at 0 before the
 * first failure: an alert on `increase(redis_failures_total[5m]) > 0`, or a
 * dashboard panel, sees a series from the first scrape instead of "no data".
 *
 * A metric with an attribute gets one series per value known in advance
 * (`startAttributes`) and no bare series; the others get one series without
 * attributes. Nothing is overwritten: reading a series creates it at zero
 * only if nothing has updated it yet.
 */
import { Effect, Layer, Metric } from "effect"

/** The attribute values each labelled metric starts with, by metric name. */
export const startAttributes: Readonly<Record<string, ReadonlyArray<Record<string, string>>>> = {
  tier_up: [{ tier: "postgres" }, { tier: "redis" }, { tier: "rabbitmq" }],
  events_received_total: [{ kind: "new" }, { kind: "edited" }, { kind: "deleted" }],
  events_rejected_total: [{ reason: "malformed" }, { reason: "database" }, { reason: "relay" }],
  api_auth_failures_total: [{ reason: "unauthenticated" }, { reason: "forbidden" }],
  telegram_backfill_requests_total: [{ status: "done" }, { status: "failed" }],
  storage_maintenance_failures_total: [{ task: "partitions" }, { task: "poll_marks" }, { task: "aggregates" }],
  storage_maintenance_last_success_timestamp_seconds: [{ task: "partitions" }, { task: "poll_marks" }, { task: "aggregates" }]
}

type AnyMetric = Metric.Metric<never, unknown>

/** Every series `register` creates for these modules, as `[metric, attributes]`. */
export const startSeries = (modules: ReadonlyArray<Record<string, unknown>>) =>
  modules.flatMap((module) => Object.values(module).filter(Metric.isMetric) as Array<AnyMetric>).flatMap((metric) =>
    (startAttributes[metric.id] ?? [{}]).map((attributes) => [metric, attributes] as const)
  )

export const layer = (modules: ReadonlyArray<Record<string, unknown>>) =>
  Layer.effectDiscard(
    Effect.forEach(
      startSeries(modules),
      ([metric, attributes]) => Metric.value(Object.keys(attributes).length === 0 ? metric : metric.pipe(Metric.withAttributes(attributes))),
      { discard: true }
    )
  )
