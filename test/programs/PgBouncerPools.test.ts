/**
 * The PgBouncer pool watcher: the warning once above the threshold and once on
 * recovery, from scripted readings under the TestClock; then the real thing,
 * PgBouncer's admin console on 6434 read through src/layers/PgBouncerAdmin.ts
 * while the test holds transactions open on its own database.
 */
import { PgClient } from "@effect/sql-pg"
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Deferred, Effect, Fiber, Layer, Metric, Redacted, Ref, Schedule } from "effect"
import { Reactivity } from "effect/reactivity"
import { TestClock } from "effect/testing"
import * as PgBouncerAdmin from "../../src/layers/PgBouncerAdmin.ts"
import * as PgBouncerPools from "../../src/programs/PgBouncerPools.ts"
import { PoolStats, PoolStatsUnavailable, type PoolUsage } from "../../src/services/PoolStats.ts"
import { makeTestDatabase } from "../support/Database.ts"
import { captureLogs } from "../telegram/Harness.ts"

const usage = (database: string, svActive: number): PoolUsage => ({
  database,
  user: "telegram_gateway",
  clActive: svActive,
  clWaiting: 0,
  svActive,
  svIdle: 0,
  svUsed: 0,
  svTested: 0,
  svLogin: 0,
  maxWaitSeconds: 0,
  poolSize: 20
})

const config = (pgbouncer: Record<string, unknown>) => ConfigProvider.layer(ConfigProvider.fromUnknown({ pgbouncer }))

const gauge = (name: keyof typeof PgBouncerPools.poolGauges, database: string) =>
  Metric.value(PgBouncerPools.poolGauges[name].pipe(Metric.withAttributes({ database, user: "telegram_gateway" })))

describe("PgBouncer pool watcher", () => {
  it.effect("warns once above 80% of the pool, once when back under, and once per failed stretch", () =>
    Effect.gen(function*() {
      const database = `scripted_${Date.now()}`
      // One reading per 15 s: 10, 17, 18, 19, then unreadable twice, 12, 5, 18 of 20 in use.
      const script: Array<number | "down"> = [10, 17, 18, 19, "down", "down", 12, 5, 18]
      const next = yield* Ref.make(0)
      const stats = Layer.succeed(PoolStats)(PoolStats.of({
        pools: Ref.getAndUpdate(next, (index) => index + 1).pipe(
          Effect.flatMap((index) => {
            const step = script[Math.min(index, script.length - 1)]!
            return step === "down"
              ? Effect.fail(new PoolStatsUnavailable({ detail: "connection refused" }))
              : Effect.succeed([usage(database, step)])
          })
        )
      }))
      const logs = captureLogs()
      const fiber = yield* PgBouncerPools.watch.pipe(
        Effect.provide([stats, config({ pollInterval: "15 seconds" }), logs.layer]),
        Effect.forkChild
      )
      for (let step = 1; step < script.length; step++) yield* TestClock.adjust("15 seconds")
      yield* Fiber.interrupt(fiber)

      const messages = logs.lines.map((line) => JSON.parse(line) as { message: string; level: string })
      const warnings = messages.filter((line) => line.level === "WARN").map((line) => line.message)
      assert.deepStrictEqual(warnings, [
        `PgBouncer pool ${database}/telegram_gateway: 17 of 20 server connections in use (85%), above 80%`,
        "PgBouncer's pool statistics could not be read: connection refused; retrying every 15s",
        `PgBouncer pool ${database}/telegram_gateway recovered: 12 of 20 server connections in use (60%), under 80%`,
        `PgBouncer pool ${database}/telegram_gateway: 18 of 20 server connections in use (90%), above 80%`
      ])
      assert.strictEqual((yield* gauge("svActive", database)).value, 18)
      assert.strictEqual((yield* gauge("poolSize", database)).value, 20)
      assert.strictEqual((yield* gauge("utilization", database)).value, 0.9)
      assert.isAtLeast((yield* Metric.value(PgBouncerPools.statsFailures)).count, 2)
    }))

  it.live("reads sv_active from PgBouncer's admin console while transactions hold server connections", () =>
    Effect.gen(function*() {
      const database = yield* makeTestDatabase("pools")
      // Three clients, each in an open transaction: PgBouncer (transaction pooling) gives each a server connection.
      const release = yield* Deferred.make<void>()
      const holders = yield* Effect.forEach([1, 2, 3], () =>
        Effect.gen(function*() {
          const sql = yield* PgClient.makeClient({ url: database.url, prepare: false }).pipe(Effect.provide(Reactivity.layer))
          const begun = yield* Deferred.make<void>()
          const holder = yield* sql.withTransaction(
            sql`SELECT 1`.pipe(Effect.andThen(Deferred.succeed(begun, undefined)), Effect.andThen(Deferred.await(release)))
          ).pipe(Effect.forkChild)
          yield* Deferred.await(begun)
          return holder
        }))
      const logs = captureLogs()
      // 3 of 20 is 15%: above a 10% threshold.
      const settings = ConfigProvider.layer(ConfigProvider.fromUnknown({
        database: { url: Redacted.value(database.url) },
        pgbouncer: { pollInterval: "100 millis", warnRatio: 0.1 }
      }))
      const watcher = yield* PgBouncerPools.watch.pipe(
        Effect.provide(PgBouncerAdmin.layer),
        Effect.provide([settings, logs.layer]),
        Effect.forkChild
      )
      const seen = (pattern: RegExp) =>
        Effect.sync(() => logs.lines.some((line) => pattern.test(line))).pipe(
          Effect.repeat({ until: (found) => found, schedule: Schedule.spaced("50 millis") }),
          Effect.timeoutOrElse({
            duration: "10 seconds",
            orElse: () => Effect.die(new Error(`never logged ${pattern}; logs:\n${logs.lines.join("\n")}`))
          })
        )
      yield* seen(/3 of 20 server connections in use \(15%\), above 10%/)
      assert.strictEqual((yield* gauge("svActive", database.name)).value, 3)
      assert.strictEqual((yield* gauge("poolSize", database.name)).value, 20)
      assert.strictEqual((yield* Metric.value(PgBouncerPools.statsUp)).value, 1)

      yield* Deferred.succeed(release, undefined)
      yield* Effect.forEach(holders, Fiber.join)
      yield* seen(/recovered: 0 of 20 server connections in use \(0%\), under 10%/)
      yield* Fiber.interrupt(watcher)
      const warnings = logs.lines.filter((line) => line.includes(`pool ${database.name}/`))
      assert.strictEqual(warnings.length, 2, warnings.join("\n"))
    }).pipe(Effect.scoped))
})
