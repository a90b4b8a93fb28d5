/** The gateway's refresher of the count views, through PgBouncer like the daemon. */
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Layer, Option } from "effect"
import * as PgClient from "../../src/layers/PgClient.ts"
import * as AggregateRefresher from "../../src/programs/AggregateRefresher.ts"
import { configLayer, makeTestDatabase, query } from "../support/Database.ts"

describe("AggregateRefresher", () => {
  it.live("fills the count views at start, and applies the configured retention", () =>
    Effect.gen(function*() {
      const database = yield* makeTestDatabase("refresher")
      yield* query(database, "CREATE TABLE messages_p20200101 PARTITION OF messages FOR VALUES FROM ('2020-01-01') TO ('2020-01-02')")
      yield* query(database, "SELECT upsert_message_version(1, 1, 0, now(), 'nova', '{}', now())")
      const config = configLayer(database, { aggregateRefreshInterval: "1 hour", retention: "365 days" })
      yield* Layer.build(AggregateRefresher.layer.pipe(Layer.provide(PgClient.layer), Layer.provide(config)))
      let rows: ReadonlyArray<{ messages: number }> = []
      for (let attempt = 0; attempt < 50 && rows.length === 0; attempt++) {
        yield* Effect.sleep("100 millis")
        rows = yield* query<{ messages: number }>(database, "SELECT messages::int FROM message_counts_daily WHERE channel_id = 1")
      }
      assert.deepStrictEqual(rows, [{ messages: 1 }])
      const [old] = yield* query<{ present: boolean }>(database, "SELECT to_regclass('messages_p20200101') IS NOT NULL AS present")
      assert.isFalse(old?.present)
    }))

  it.effect("refreshOnce reports what it did", () =>
    Effect.gen(function*() {
      const database = yield* makeTestDatabase("refresh_once")
      const result = yield* AggregateRefresher.refreshOnce(Option.some(Duration.days(30))).pipe(
        Effect.provide(PgClient.layer),
        Effect.provide(configLayer(database))
      )
      assert.deepStrictEqual(result, { refreshed: true, retention: [] })
    }))
})
