/**
 * The gateway as a child process (`telegram-gateway run`), SIGKILLed while
 * Telegram keeps posting, editing and deleting, down for 20 s, restarted:
 * PostgreSQL ends up holding exactly what the simulator went through. The
 * update state only moves with commits, so a kill after receipt, after a
 * commit, or between a commit and the state save all resume correctly.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Redacted } from "effect"
import { TelegramSimulator } from "../../src/simulator/index.ts"
import { query } from "../support/Database.ts"
import { simulatorEnv, startGatewayProcess } from "../support/GatewayProcess.ts"
import { makeTestConsumer, uniqueName } from "../support/TestGateway.ts"
import { awaitExactEquality, Ledger } from "./EngineHarness.ts"
import { makeSetup } from "./Harness.ts"

describe("update engine across SIGKILL and restarts", () => {
  it.live("killed twice under load, then 20 s down while posts, edits and deletions go on: exact equality after the restart", () =>
    Effect.gen(function*() {
      const sim = yield* TelegramSimulator.start({ differenceTimeout: 1, differenceTooLongAfter: 100_000 })
      const news = sim.world.addChannel({ username: "restarts", title: "Restarts", kind: "channel" })
      const other = sim.world.addChannel({ username: "restarts_two", title: "Restarts 2", kind: "supergroup" })
      const setup = yield* makeSetup(sim)
      const ledger = new Ledger(sim)
      const exchange = uniqueName("restart.messages")
      yield* makeTestConsumer(exchange, { consume: false })
      const env = {
        DATABASE_URL: Redacted.value(setup.database.url),
        REDIS_KEY_PREFIX: `${uniqueName("tgrestart")}:`,
        RABBITMQ_EXCHANGE: exchange,
        ...simulatorEnv(sim, setup.sessionFile, "@restarts,@restarts_two"),
        TELEGRAM_POLL_INTERVAL: "1 second",
        TELEGRAM_STATE_FLUSH_INTERVAL: "700 millis"
      }
      const first = yield* startGatewayProcess({ env })
      yield* first.waitForLog(/restarts_two: first read/, "60 seconds")
      yield* first.waitForLog(/restarts: first read/, "10 seconds")

      sim.faults.pushFaults({ dropRatio: 0.1, seed: 3 })
      let posting = true
      const poster = yield* Effect.gen(function*() {
        let i = 0
        while (posting) {
          i++
          for (const channel of [news, other]) {
            const id = ledger.post(channel, `${channel.username} ${i}`)
            if (i % 7 === 0) ledger.edit(channel, id - 2, `${channel.username} ${i - 2}, edited`)
            if (i % 11 === 0) ledger.delete(channel, [id - 4])
          }
          yield* Effect.sleep("50 millis")
        }
      }).pipe(Effect.forkScoped)

      // Killed with events received and not committed, and committed but not yet saved as state.
      yield* Effect.sleep("2 seconds")
      first.kill("SIGKILL")
      assert.isNull(yield* first.exited)
      const second = yield* startGatewayProcess({ env })
      yield* second.waitForLog(/connected to Telegram/, "60 seconds")
      yield* Effect.sleep("3 seconds")
      second.kill("SIGKILL")
      yield* second.exited

      // 20 s down, Telegram going on.
      yield* Effect.sleep("20 seconds")
      const third = yield* startGatewayProcess({ env })
      yield* third.waitForLog(/connected to Telegram/, "60 seconds")
      yield* Effect.sleep("2 seconds")
      posting = false
      yield* Fiber.join(poster)
      sim.faults.pushFaults({})
      ledger.post(news, "last")
      ledger.post(other, "last")

      yield* awaitExactEquality(setup, ledger, "90 seconds")
      const counts = yield* query<{ count: number }>(setup.database, "SELECT count(*)::int AS count FROM message_deletions")
      assert.isAbove(counts[0]?.count ?? 0, 10)
      assert.isAbove([...ledger.versions.get(news.id)!.values()].length, 300)
      third.kill("SIGTERM")
      assert.strictEqual(yield* third.exited, 0)
    }), { timeout: 240_000 })
})
