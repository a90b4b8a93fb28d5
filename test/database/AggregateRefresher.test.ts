/** The gateway's refresher of the count views, through PgBouncer like the daemon. */
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Layer, Metric, Option, Schedule } from "effect"
import * as Migrations from "../../src/layers/Migrations.ts"
import * as PgClient from "../../src/layers/PgClient.ts"
import * as PgStorageHousekeeping from "../../src/layers/PgStorageHousekeeping.ts"
import * as AggregateRefresher from "../../src/programs/AggregateRefresher.ts"
import * as Metrics from "../../src/services/Metrics.ts"
import { configLayer, makeTestDatabase, query } from "../support/Database.ts"

describe("AggregateRefresher", () => {
  it.live("fills the count views at start, applies the configured retention, and stamps the round", () =>
    Effect.gen(function*() {
      const database = yield* makeTestDatabase("refresher")
      yield* query(database, "CREATE TABLE messages_p20200101 PARTITION OF messages FOR VALUES FROM ('2020-01-01') TO ('2020-01-02')")
      yield* query(database, "SELECT upsert_message_version(1, 1, 0, now(), 'nova', '{}', now())")
      const config = configLayer(database, { aggregateRefreshInterval: "1 hour", retention: "365 days" })
      const startedAt = Date.now() / 1000
      yield* Layer.build(AggregateRefresher.layer.pipe(Layer.provide(PgStorageHousekeeping.layer), Layer.provide(PgClient.layer), Layer.provide(config)))
      // The refresher's first pass refreshes, then applies retention: wait for both
      // (until that first refresh the view is not populated and cannot be read).
      const state = Effect.all({
        counts: query<{ messages: number }>(database, "SELECT messages::int FROM message_counts_daily WHERE channel_id = 1")
          .pipe(Effect.catch(() => Effect.succeed([]))),
        oldPartition: query<{ present: boolean }>(database, "SELECT to_regclass('messages_p20200101') IS NOT NULL AS present")
          .pipe(Effect.map((rows) => rows[0]?.present))
      })
      const settled = yield* state.pipe(
        Effect.repeat({
          until: ({ counts, oldPartition }) => counts.length > 0 && oldPartition === false,
          schedule: Schedule.spaced("100 millis"),
          times: 300
        })
      )
      assert.deepStrictEqual(settled, { counts: [{ messages: 1 }], oldPartition: false })
      const succeededAt = yield* Metric.value(Metrics.storageMaintenanceLastSuccess.pipe(Metric.withAttributes({ task: "aggregates" })))
      assert.isAtLeast(succeededAt.value as number, startedAt)
    }))

  it.live("counts a failed round, stamps no success, and tries again on the next", () =>
    Effect.gen(function*() {
      // Migrated to 0003: the count views and their refresh function (0004) do not exist yet.
      const database = yield* makeTestDatabase("refresher_fails", { migrate: false })
      yield* Migrations.migrateTo({ to: 3 }).pipe(Effect.provide(configLayer(database)))
      const failures = Metric.value(Metrics.storageMaintenanceFailures.pipe(Metric.withAttributes({ task: "aggregates" })))
        .pipe(Effect.map((state) => state.count))
      const before = yield* failures
      const lastSuccess = Metric.value(Metrics.storageMaintenanceLastSuccess.pipe(Metric.withAttributes({ task: "aggregates" })))
      const succeededBefore = (yield* lastSuccess).value
      const config = configLayer(database, { aggregateRefreshInterval: "200 millis" })
      yield* Layer.build(AggregateRefresher.layer.pipe(Layer.provide(PgStorageHousekeeping.layer), Layer.provide(PgClient.layer), Layer.provide(config)))
      const after = yield* failures.pipe(
        Effect.repeat({ until: (count) => count >= before + 2, schedule: Schedule.spaced("50 millis"), times: 200 })
      )
      assert.isAtLeast(after, before + 2)
      assert.strictEqual((yield* lastSuccess).value, succeededBefore)
    }))

  it.effect("refreshOnce reports what it did", () =>
    Effect.gen(function*() {
      const database = yield* makeTestDatabase("refresh_once")
      const result = yield* AggregateRefresher.refreshOnce(Option.some(Duration.days(30))).pipe(
        Effect.provide(PgStorageHousekeeping.layer),
        Effect.provide(PgClient.layer),
        Effect.provide(configLayer(database))
      )
      assert.deepStrictEqual(result, { refreshed: true, retention: [] })
    }))
})
