/**
 * Leases and fencing against real PostgreSQL through the real PgBouncer, in
 * a database of this suite's own: two members are two instances of the
 * layer, as two processes would be.
 */
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Effect, Layer, Redacted } from "effect"
import * as PgAccountLeases from "../../src/layers/PgAccountLeases.ts"
import * as PgUpdateStateStore from "../../src/layers/PgUpdateStateStore.ts"
import { AccountLeases, LeaseFence } from "../../src/services/AccountLeases.ts"
import { OwnerEpoch, UpdateStateStore } from "../../src/services/UpdateState.ts"
import { makeTestDatabase, query, type TestDatabase } from "../support/Database.ts"

const config = (database: TestDatabase) =>
  ConfigProvider.layer(ConfigProvider.fromUnknown({
    database: { url: Redacted.value(database.url), migrationUrl: Redacted.value(database.migrationUrl) },
    ha: { leaseTtl: "1 second" }
  }))

/** A member of its own, as another process would be. */
const member = (database: TestDatabase) =>
  Layer.build(Layer.fresh(PgAccountLeases.layer).pipe(Layer.provide(config(database)))).pipe(
    Effect.map((context) => context.mapUnsafe.get(AccountLeases.key) as AccountLeases["Service"])
  )

const waitForExpiry = Effect.sleep("1100 millis")

/** A session key's fingerprint (src/layers/SessionFile.ts, `keyId`). */
const KEY = "00112233aabbccdd"

describe("PgAccountLeases", () => {
  it.live("one owner at a time; a take-over after expiry raises the epoch and the old owner cannot renew", () =>
    Effect.gen(function*() {
      const database = yield* makeTestDatabase("leases")
      const a = yield* member(database)
      const b = yield* member(database)

      const first = yield* a.acquire("alpha", KEY)
      assert.strictEqual(first?.epoch, 1)
      assert.isUndefined(yield* b.acquire("alpha", KEY))
      yield* a.renew(first!)
      assert.isUndefined(yield* b.acquire("alpha", KEY))

      yield* waitForExpiry
      const second = yield* b.acquire("alpha", KEY)
      assert.strictEqual(second?.epoch, 2)
      assert.strictEqual(second?.tookOverFrom, a.member.id)
      assert.isNull(first?.tookOverFrom ?? null)
      const lost = yield* a.renew(first!).pipe(Effect.flip)
      assert.strictEqual(lost._tag, "LeaseLost")
      const [holder] = yield* a.holders(["alpha"])
      assert.strictEqual(holder?.owner, b.member.id)
      assert.isTrue(holder?.live)
    }))

  it.live("a released lease is free at once, with a higher epoch for the next owner", () =>
    Effect.gen(function*() {
      const database = yield* makeTestDatabase("leases")
      const a = yield* member(database)
      const b = yield* member(database)
      const lease = yield* a.acquire("alpha", KEY)
      yield* a.release(lease!)
      const next = yield* b.acquire("alpha", KEY)
      assert.strictEqual(next?.epoch, 2)
      assert.isNull(next?.tookOverFrom, "a released lease is not a take-over")
    }))

  it.live("the database refuses update state written under a stale epoch, per account", () =>
    Effect.gen(function*() {
      const database = yield* makeTestDatabase("leases")
      const a = yield* member(database)
      const b = yield* member(database)
      const built = yield* Layer.build(Layer.fresh(PgUpdateStateStore.layer).pipe(Layer.provide(config(database)))).pipe(
        Effect.map((context) => context.mapUnsafe.get(UpdateStateStore.key) as UpdateStateStore["Service"])
      )
      /** The store as the owner of `account` at `epoch` calls it (the references are read at each call). */
      const store = (account: string, epoch: number) => {
        const as = <A, E>(effect: Effect.Effect<A, E>) =>
          effect.pipe(Effect.provideService(LeaseFence, { account, epoch }), Effect.provideService(OwnerEpoch, Effect.succeed(BigInt(epoch))))
        return Effect.succeed({
          save: (state: Parameters<UpdateStateStore["Service"]["save"]>[0]) => as(built.save(state)),
          load: as(built.load)
        })
      }
      const state = (pts: number) => ({ channels: [{ channelId: 42, pts, topMessageId: pts }], account: { pts, qts: 0, date: 0, seq: 0 } })
      const old = yield* a.acquire("alpha", KEY)
      const oldStore = yield* store("alpha", old!.epoch)
      yield* oldStore.save(state(10))
      yield* waitForExpiry
      const current = yield* b.acquire("alpha", KEY)
      const currentStore = yield* store("alpha", current!.epoch)

      const refused = yield* oldStore.save(state(99)).pipe(Effect.flip)
      assert.strictEqual(refused._tag, "UpdateStateFenced")
      assert.match(refused.message, /account alpha is at epoch 2, this write was made under epoch 1/)
      yield* currentStore.save(state(12))
      // Another account's state of the same channel is its own.
      const other = yield* a.acquire("beta", KEY)
      yield* (yield* store("beta", other!.epoch)).save(state(3))

      const loaded = yield* currentStore.load
      assert.deepStrictEqual(loaded.channels, [{ channelId: 42, pts: 12, topMessageId: 12 }])
      assert.strictEqual(loaded.account?.pts, 12)
      const rows = yield* query<{ account: string; pts: number }>(database, "SELECT account, pts FROM telegram_channel_state ORDER BY account")
      assert.deepStrictEqual(rows.map((row) => [row.account, row.pts]), [["alpha", 12], ["beta", 3]])
    }))

  it.live("counts only members whose heartbeat has not expired", () =>
    Effect.gen(function*() {
      const database = yield* makeTestDatabase("leases")
      const a = yield* member(database)
      const b = yield* member(database)
      yield* a.heartbeat
      yield* b.heartbeat
      assert.strictEqual(yield* a.liveMembers, 2)
      yield* b.leave
      assert.strictEqual(yield* a.liveMembers, 1)
      yield* waitForExpiry
      assert.strictEqual(yield* a.liveMembers, 0)
    }))

  it.live("a refused session is marked by its owner's epoch only, keeps that key out, and a login clears it", () =>
    Effect.gen(function*() {
      const database = yield* makeTestDatabase("leases")
      const a = yield* member(database)
      const b = yield* member(database)
      const stale = yield* a.acquire("alpha", KEY)
      yield* waitForExpiry
      const lease = yield* b.acquire("alpha", KEY)

      // The process that lost the lease marks nothing; the holder does.
      assert.isFalse(yield* a.markLoginNeeded(stale!, "SESSION_REVOKED", KEY))
      assert.isNull((yield* a.holders(["alpha"]))[0]?.loginNeeded)
      assert.isTrue(yield* b.markLoginNeeded(lease!, "SESSION_REVOKED", KEY))
      yield* b.release(lease!)
      const [holder] = yield* a.holders(["alpha"])
      assert.strictEqual(holder?.loginNeeded?.reason, "SESSION_REVOKED")
      assert.strictEqual(holder?.loginNeeded?.keyId, KEY)
      assert.strictEqual(holder?.loginNeeded?.epoch, lease!.epoch)

      // Free, but not with the refused key; a new session's key may take it.
      assert.isUndefined(yield* a.acquire("alpha", KEY))
      const fresh = yield* a.acquire("alpha", "ffeeddccbbaa9988")
      assert.strictEqual(fresh?.epoch, lease!.epoch + 1)
      yield* a.release(fresh!)

      assert.isTrue(yield* a.clearLoginNeeded("alpha"))
      assert.isFalse(yield* a.clearLoginNeeded("alpha"))
      assert.isNull((yield* a.holders(["alpha"]))[0]?.loginNeeded)
      assert.isDefined(yield* b.acquire("alpha", KEY))
    }))
})
