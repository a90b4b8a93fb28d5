/**
 * StorageHousekeeping on PostgreSQL: the SQL functions of migration 0004
 * (`refresh_message_aggregates`, `drop_expired_message_partitions`), which
 * take a transaction lock so two gateways never run them at once, and are
 * no-ops on TimescaleDB, whose own policies do this.
 */
import { Duration, Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { HousekeepingFailed, StorageHousekeeping } from "../services/StorageHousekeeping.ts"

export const layer = Layer.effect(
  StorageHousekeeping,
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const refreshAggregates = sql<{ refreshed: boolean }>`SELECT refresh_message_aggregates() AS refreshed`.pipe(
      Effect.map(([result]) => result?.refreshed === true),
      Effect.mapError((cause) => new HousekeepingFailed({ operation: "refresh the message count views", cause })),
      Effect.withSpan("StorageHousekeeping.refreshAggregates")
    )
    const dropExpired = (retention: Duration.Duration) =>
      sql<{ action: string }>`
        SELECT drop_expired_message_partitions(${`${Duration.toMillis(retention)} milliseconds`}::interval) AS action`.pipe(
        Effect.map((rows) => rows.map((row) => row.action)),
        Effect.mapError((cause) => new HousekeepingFailed({ operation: "drop the expired message partitions", cause })),
        Effect.withSpan("StorageHousekeeping.dropExpired")
      )
    return StorageHousekeeping.of({ refreshAggregates, dropExpired })
  })
)
