/**
 * Reads PgBouncer's pools every `pgbouncer.pollInterval` and exports them as
 * `pgbouncer_pools_*{database,user}`; logs a warning once when a pool's
 * server connections in use (`sv_active`) go above `pgbouncer.warnRatio` of
 * its size, and once more when they are back under it. A reading that fails
 * is counted and logged once per outage; the daemon goes on without it.
 */
import { Duration, Effect, Layer, Metric, Schedule } from "effect"
import { PgBouncerConfig } from "../services/GatewayConfig.ts"
import { PoolStats, type PoolUsage } from "../services/PoolStats.ts"

const pool = (name: string, description: string) => Metric.gauge(`pgbouncer_pools_${name}`, { description })

/** Per pool, attributes `database` and `user`. */
export const poolGauges = {
  clActive: pool("cl_active", "Client connections linked to a server connection"),
  clWaiting: pool("cl_waiting", "Client connections waiting for a server connection"),
  svActive: pool("sv_active", "Server connections in use by a client"),
  svIdle: pool("sv_idle", "Server connections idle and ready"),
  svUsed: pool("sv_used", "Server connections idle past server_check_delay, to be checked before reuse"),
  svTested: pool("sv_tested", "Server connections being tested or reset"),
  svLogin: pool("sv_login", "Server connections logging in"),
  maxWaitSeconds: pool("maxwait_seconds", "Age of the oldest waiting client"),
  poolSize: pool("pool_size", "Server connections the pool may open"),
  utilization: pool("utilization_ratio", "Server connections in use (sv_active) over the pool size")
}
export const statsUp = Metric.gauge("pgbouncer_stats_up", {
  description: "Whether the last reading of PgBouncer's admin console succeeded (1) or not (0)"
})
export const statsFailures = Metric.counter("pgbouncer_stats_failures_total", {
  description: "Readings of PgBouncer's admin console that failed",
  incremental: true
})

const values = (usage: PoolUsage) => ({
  clActive: usage.clActive,
  clWaiting: usage.clWaiting,
  svActive: usage.svActive,
  svIdle: usage.svIdle,
  svUsed: usage.svUsed,
  svTested: usage.svTested,
  svLogin: usage.svLogin,
  maxWaitSeconds: usage.maxWaitSeconds,
  poolSize: usage.poolSize,
  utilization: usage.poolSize > 0 ? usage.svActive / usage.poolSize : 0
})

const percent = (ratio: number) => `${Math.round(ratio * 100)}%`

/** The watcher itself: one reading per interval, forever. */
export const watch = Effect.gen(function*() {
  const config = yield* PgBouncerConfig
  const stats = yield* PoolStats
  const over = new Set<string>()
  let failing = false
  yield* Metric.value(statsFailures)
  yield* Metric.update(statsUp, 0)

  const reading = stats.pools.pipe(
    Effect.flatMap((pools) =>
      Effect.gen(function*() {
        if (failing) yield* Effect.logInfo("PgBouncer's pool statistics readable again")
        failing = false
        yield* Metric.update(statsUp, 1)
        const seen = new Set<string>()
        for (const usage of pools) {
          const key = `${usage.database}/${usage.user}`
          seen.add(key)
          const current = values(usage)
          const attributes = { database: usage.database, user: usage.user }
          for (const [name, gauge] of Object.entries(poolGauges)) {
            yield* Metric.update(gauge.pipe(Metric.withAttributes(attributes)), current[name as keyof typeof current])
          }
          const annotations = { pool: key, inUse: usage.svActive, poolSize: usage.poolSize, waiting: usage.clWaiting }
          if (usage.poolSize > 0 && current.utilization > config.warnRatio && !over.has(key)) {
            over.add(key)
            yield* Effect.logWarning(
              `PgBouncer pool ${key}: ${usage.svActive} of ${usage.poolSize} server connections in use (${percent(current.utilization)}), above ${percent(config.warnRatio)}`
            ).pipe(Effect.annotateLogs(annotations))
          } else if (over.has(key) && current.utilization <= config.warnRatio) {
            over.delete(key)
            yield* Effect.logWarning(
              `PgBouncer pool ${key} recovered: ${usage.svActive} of ${usage.poolSize} server connections in use (${percent(current.utilization)}), under ${percent(config.warnRatio)}`
            ).pipe(Effect.annotateLogs(annotations))
          }
        }
        for (const key of over) {
          if (seen.has(key)) continue
          over.delete(key)
          yield* Effect.logWarning(`PgBouncer pool ${key} recovered: it has no connections left`).pipe(
            Effect.annotateLogs({ pool: key })
          )
        }
      })
    ),
    Effect.catchTag("PoolStatsUnavailable", (error) =>
      Effect.gen(function*() {
        yield* Metric.update(statsFailures, 1)
        yield* Metric.update(statsUp, 0)
        if (!failing) yield* Effect.logWarning(`${error.message}; retrying every ${Duration.format(config.pollInterval)}`)
        failing = true
      }))
  )
  yield* reading.pipe(Effect.repeat(Schedule.spaced(config.pollInterval)))
})

/** Runs `watch` beside the daemon; nothing when `pgbouncer.pollInterval` is 0. */
export const layer = Layer.effectDiscard(Effect.gen(function*() {
  const config = yield* PgBouncerConfig
  if (Duration.toMillis(config.pollInterval) <= 0) return
  yield* Effect.forkScoped(watch)
}))
