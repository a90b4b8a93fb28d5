/**
 * The update state in PostgreSQL: it only moves forward, flood waits are kept
 * until they end, and a write with an epoch below the stored one is refused
 * (the fencing hook for a high-availability lease).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import * as PgClient from "../../src/layers/PgClient.ts"
import * as PgUpdateStateStore from "../../src/layers/PgUpdateStateStore.ts"
import { OwnerEpoch, UpdateStateStore } from "../../src/services/UpdateState.ts"
import { configLayer, makeTestDatabase } from "../support/Database.ts"

const store =
  Layer.unwrap(
    makeTestDatabase("update_state").pipe(
      Effect.map((database) =>
        Layer.fresh(PgUpdateStateStore.layerNoDeps).pipe(
          Layer.provide(PgClient.layer),
          Layer.provide(configLayer(database))
        )
      )
    )
  )

describe("PgUpdateStateStore", () => {
  it.effect("saves channel and account state, moving only forward, and reads it back with live flood waits", () =>
    Effect.gen(function*() {
      const store = yield* UpdateStateStore
      yield* store.save({ channels: [{ channelId: 1_000_000_001, pts: 50, topMessageId: 40 }], account: { pts: 7, qts: 1, date: 100, seq: 2 } })
      yield* store.save({ channels: [{ channelId: 1_000_000_001, pts: 45, topMessageId: 41 }], account: undefined })
      yield* store.saveFloodWait({ method: "updates.GetChannelDifference", chatId: 1_000_000_001, until: Date.now() + 60_000 })
      yield* store.saveFloodWait({ method: "messages.GetHistory", chatId: 1_000_000_001, until: Date.now() - 1_000 })
      const loaded = yield* store.load
      assert.deepStrictEqual(loaded.channels, [{ channelId: 1_000_000_001, pts: 50, topMessageId: 41 }])
      assert.deepStrictEqual(loaded.account, { pts: 7, qts: 1, date: 100, seq: 2 })
      assert.deepStrictEqual(loaded.floodWaits.map((wait) => wait.method), ["updates.GetChannelDifference"])
    }).pipe(Effect.provide(store)), { timeout: 30_000 })

  it.effect("refuses a write whose epoch is below the stored one, naming both", () =>
    Effect.gen(function*() {
      const store = yield* UpdateStateStore
      yield* store.save({ channels: [{ channelId: 5, pts: 10, topMessageId: 1 }], account: undefined }).pipe(
        Effect.provideService(OwnerEpoch, Effect.succeed(3n))
      )
      const refused = yield* store.save({ channels: [{ channelId: 5, pts: 11, topMessageId: 2 }], account: undefined }).pipe(
        Effect.provideService(OwnerEpoch, Effect.succeed(2n)),
        Effect.flip
      )
      assert.strictEqual(refused._tag, "UpdateStateFenced")
      assert.include(refused.message, "owned by epoch 3")
      assert.include(refused.message, "epoch 2 is refused")
      assert.deepStrictEqual((yield* store.load).channels, [{ channelId: 5, pts: 10, topMessageId: 1 }])
    }).pipe(Effect.provide(store)), { timeout: 30_000 })
})
