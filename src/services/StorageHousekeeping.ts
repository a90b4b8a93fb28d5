/**
 * What plain PostgreSQL needs done on a schedule and TimescaleDB does by
 * itself: refresh the hourly and daily count views (migration 0004) and drop
 * the daily partitions past the retention. src/programs/AggregateRefresher.ts
 * runs it; src/layers/PgStorageHousekeeping.ts calls the SQL functions.
 */
import { Context, type Duration, type Effect, Schema } from "effect"
import { describeCause } from "../domain/DescribeCause.ts"

export class HousekeepingFailed extends Schema.TaggedError<HousekeepingFailed>()("HousekeepingFailed", {
  operation: Schema.String,
  cause: Schema.Defect()
}) {
  override get message(): string {
    return `Storage housekeeping could not ${this.operation}: ${describeCause(this.cause)}`
  }
}

export class StorageHousekeeping extends Context.Service<StorageHousekeeping, {
  /** Refreshes the count views; false when another gateway holds the refresh (it skips its round). */
  readonly refreshAggregates: Effect.Effect<boolean, HousekeepingFailed>
  /** Drops the partitions older than `retention`; one line per action taken. */
  readonly dropExpired: (retention: Duration.Duration) => Effect.Effect<ReadonlyArray<string>, HousekeepingFailed>
}>()("telegram-gateway/StorageHousekeeping") {}
