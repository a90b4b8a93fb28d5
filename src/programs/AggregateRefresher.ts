/**
 * Plain PostgreSQL has no continuous aggregates: the hourly and daily count
 * views (migration 0004) are materialized views the gateway refreshes on a
 * schedule (`database.aggregateRefreshInterval`), and the configured
 * `database.retention` is enforced on the same beat by dropping expired daily
 * partitions. On TimescaleDB both calls are no-ops: its own policies do this.
 *
 * Several gateways may run it: the SQL functions take a transaction lock and
 * a second refresher skips its round. A failed round is logged, counted
 * (`storage_maintenance_failures_total{task="aggregates"}`) and the next one
 * tries again; it never stops the daemon. A round that succeeds (or that
 * another gateway's refresher held the lock for) sets
 * `storage_maintenance_last_success_timestamp_seconds{task="aggregates"}`.
 */
import { Clock, type Duration, Effect, Layer, Metric, Option, Schedule } from "effect"
import { DatabaseConfig } from "../services/GatewayConfig.ts"
import * as Metrics from "../services/Metrics.ts"
import { StorageHousekeeping } from "../services/StorageHousekeeping.ts"

export const refreshOnce = Effect.fn("AggregateRefresher.refreshOnce")(function*(retention: Option.Option<Duration.Duration>) {
  const housekeeping = yield* StorageHousekeeping
  const refreshed = yield* housekeeping.refreshAggregates
  const dropped = Option.isSome(retention) ? yield* housekeeping.dropExpired(retention.value) : []
  for (const action of dropped) yield* Effect.logInfo(`Retention: ${action}`)
  return { refreshed, retention: dropped }
})

const aggregatesFailed = Metric.withAttributes(Metrics.storageMaintenanceFailures, { task: "aggregates" })
const aggregatesSucceeded = Metric.withAttributes(Metrics.storageMaintenanceLastSuccess, { task: "aggregates" })

/** Forked with the daemon's scope: refreshes at start, then every interval. */
export const layer = Layer.effectDiscard(
  Effect.gen(function*() {
    const config = yield* DatabaseConfig
    yield* refreshOnce(config.retention).pipe(
      Effect.andThen(Clock.currentTimeMillis),
      Effect.flatMap((now) => Metric.update(aggregatesSucceeded, now / 1000)),
      Effect.catch((error) =>
        Effect.logWarning("Refreshing the message count views or applying retention failed; next round retries", error)
          .pipe(Effect.andThen(Metric.update(aggregatesFailed, 1)))
      ),
      Effect.repeat(Schedule.spaced(config.aggregateRefreshInterval)),
      Effect.forkScoped
    )
  })
)
