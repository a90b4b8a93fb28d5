/**
 * The gateway (`telegram-gateway run`, a child process) SIGKILLed at exact
 * points of the update engine's cycle, each followed by posts, edits and
 * deletions while it is down and a restart; at the end PostgreSQL holds
 * exactly what the simulator went through (every version, every deletion,
 * nothing twice):
 * - right after a channel's first read, before any flush;
 * - after the pts is stored: everything committed and saved;
 * - after a batch is committed but before its pts is stored (the state
 *   flusher held back with a flush interval of an hour, so the stored pts
 *   stays behind what PostgreSQL holds);
 * - in the middle of a difference chain: pages slowed down, killed once some
 *   but not all of the backlog is committed.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Redacted } from "effect"
import { TelegramSimulator } from "../../src/simulator/index.ts"
import { query } from "../support/Database.ts"
import { simulatorEnv, startGatewayProcess } from "../support/GatewayProcess.ts"
import { makeTestConsumer, uniqueName } from "../support/TestGateway.ts"
import { awaitExactEquality, Ledger } from "./EngineHarness.ts"
import { makeSetup } from "./Harness.ts"

describe("update engine, SIGKILL at exact points", () => {
  it.live("right after the first read, after the pts is stored, between commit and pts save, and mid-difference chain: exact equality after each restart", () =>
    Effect.gen(function*() {
      const sim = yield* TelegramSimulator.start({ differenceTimeout: 1, differenceTooLongAfter: 100_000 })
      const news = sim.world.addChannel({ username: "killpoints", title: "Kill points", kind: "channel" })
      const setup = yield* makeSetup(sim)
      const ledger = new Ledger(sim)
      const exchange = uniqueName("killpoints.messages")
      yield* makeTestConsumer(exchange, { consume: false })
      const env = (flush: string) => ({
        DATABASE_URL: Redacted.value(setup.database.url),
        REDIS_KEY_PREFIX: `${uniqueName("tgkill")}:`,
        RABBITMQ_EXCHANGE: exchange,
        ...simulatorEnv(sim, setup.sessionFile, "@killpoints"),
        TELEGRAM_POLL_INTERVAL: "1 second",
        TELEGRAM_STATE_FLUSH_INTERVAL: flush,
        HA_LEASE_TTL: "3 seconds",
        HA_RENEW_INTERVAL: "1 second"
      })
      const storedPts = query<{ pts: number }>(setup.database, `SELECT pts FROM telegram_channel_state WHERE channel_id = ${news.id}`).pipe(
        Effect.map((rows) => rows[0]?.pts ?? 0)
      )
      const storedIds = query<{ count: number }>(setup.database, `SELECT count(DISTINCT message_id)::int AS count FROM messages WHERE channel_id = ${news.id}`).pipe(
        Effect.map((rows) => rows[0]?.count ?? 0)
      )
      const until = <E, R>(what: string, check: Effect.Effect<boolean, E, R>) =>
        Effect.gen(function*() {
          while (!(yield* check)) yield* Effect.sleep("50 millis")
        }).pipe(Effect.timeoutOrElse({ duration: "180 seconds", orElse: () => Effect.die(new Error(`timed out waiting for ${what}`)) }))
      const whileDown = (round: string) => {
        const first = ledger.post(news, `${round}: posted while down`)
        ledger.edit(news, first, `${round}: posted while down, edited`)
        ledger.post(news, `${round}: posted while down 2`)
        const ids = [...ledger.versions.get(news.id)!.keys()]
        ledger.delete(news, [ids[ids.length - 5]!])
      }

      // 0. Right after the first read of a channel, before any flush (the flusher
      // waits an hour): its starting position is stored at once, so the restart
      // does not start from "now" again and skip what was posted in between.
      const starting = yield* startGatewayProcess({ env: env("1 hour") })
      yield* starting.waitForLog(/killpoints: first read/, "120 seconds")
      starting.kill("SIGKILL")
      yield* starting.exited
      assert.strictEqual(yield* storedPts, sim.world.channel(news).pts, "the starting position is stored before the first read is logged")
      for (let i = 1; i <= 5; i++) ledger.post(news, `zero ${i}`)

      // 1. After the pts is stored.
      const first = yield* startGatewayProcess({ env: env("200 millis") })
      yield* awaitExactEquality(setup, ledger, "120 seconds")
      for (let i = 1; i <= 20; i++) ledger.post(news, `one ${i}`)
      ledger.edit(news, 3, "one 3, edited")
      yield* awaitExactEquality(setup, ledger)
      yield* until("the pts stored", Effect.map(storedPts, (pts) => pts === sim.world.channel(news).pts))
      first.kill("SIGKILL")
      yield* first.exited
      whileDown("after the pts was stored")

      // 2. After a commit, before its pts is stored: the flusher waits an hour.
      const second = yield* startGatewayProcess({ env: env("1 hour") })
      const savedPts = yield* storedPts
      yield* awaitExactEquality(setup, ledger, "90 seconds")
      for (let i = 1; i <= 20; i++) ledger.post(news, `two ${i}`)
      ledger.edit(news, 25, "two, 25 edited")
      yield* awaitExactEquality(setup, ledger)
      assert.strictEqual(yield* storedPts, savedPts, "committed, but the pts is not stored")
      assert.isBelow(savedPts, sim.world.channel(news).pts)
      second.kill("SIGKILL")
      yield* second.exited
      whileDown("between commit and pts save")

      // 3. In the middle of a difference chain: a backlog of 5 pages, each slowed down.
      for (let i = 1; i <= 450; i++) ledger.post(news, `three ${i}`)
      const before = yield* storedIds
      sim.faults.delay("updates.GetChannelDifference", 1500)
      const third = yield* startGatewayProcess({ env: env("200 millis") })
      yield* until("part of the backlog committed", Effect.map(storedIds, (count) => count >= before + 100))
      yield* until("its pts stored", Effect.map(storedPts, (pts) => pts > savedPts))
      third.kill("SIGKILL")
      yield* third.exited
      assert.isBelow(yield* storedIds, before + 450, "killed before the chain ended")
      whileDown("mid-difference chain")
      sim.faults.clear()

      const last = yield* startGatewayProcess({ env: env("200 millis") })
      ledger.post(news, "last")
      yield* awaitExactEquality(setup, ledger, "90 seconds")
      last.kill("SIGTERM")
      assert.strictEqual(yield* last.exited, 0)
    }), { timeout: 720_000 })
})
