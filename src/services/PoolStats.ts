/**
 * PgBouncer's view of its pools, as its admin console reports them
 * (`SHOW POOLS` joined with `SHOW DATABASES` for each pool's size). Read by
 * src/programs/PgBouncerPools.ts for the `pgbouncer_pools_*` metrics and the
 * pool-usage warning.
 */
import { Context, type Effect, Schema } from "effect"

export interface PoolUsage {
  readonly database: string
  readonly user: string
  /** Client connections linked to a server connection, and waiting for one. */
  readonly clActive: number
  readonly clWaiting: number
  /** Server connections linked to a client (in use), idle, idle awaiting a check, being tested, logging in. */
  readonly svActive: number
  readonly svIdle: number
  readonly svUsed: number
  readonly svTested: number
  readonly svLogin: number
  /** Age of the oldest waiting client, seconds. */
  readonly maxWaitSeconds: number
  /** Server connections this pool may open (`pool_size` of its database). */
  readonly poolSize: number
}

export class PoolStatsUnavailable extends Schema.TaggedError<PoolStatsUnavailable>()("PoolStatsUnavailable", {
  detail: Schema.String
}) {
  override get message(): string {
    return `PgBouncer's pool statistics could not be read: ${this.detail}`
  }
}

export class PoolStats extends Context.Service<PoolStats, {
  readonly pools: Effect.Effect<ReadonlyArray<PoolUsage>, PoolStatsUnavailable>
}>()("telegram-gateway/PoolStats") {}
