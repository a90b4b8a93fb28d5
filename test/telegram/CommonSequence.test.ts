/**
 * Basic groups live in the account's common sequence: one pts for all of
 * them, gaps filled with `updates.getDifference`, long backlogs in
 * `differenceSlice` pages. Pushes are dropped and skipped, the gateway is
 * restarted with a backlog of several slices, and PostgreSQL ends up holding
 * exactly what the simulator went through.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { TelegramSimulator } from "../../src/simulator/index.ts"
import { query } from "../support/Database.ts"
import { awaitExactEquality, fastEngine, Ledger, runGateway } from "./EngineHarness.ts"
import { makeSetup, type SourceSetup } from "./Harness.ts"

/** Waits until the engine stored the account's common pts, at least `pts`. */
const awaitAccountPts = (setup: SourceSetup, pts: number) =>
  Effect.gen(function*() {
    while (true) {
      const rows = yield* query<{ pts: number }>(setup.database, "SELECT pts FROM telegram_account_state")
      if ((rows[0]?.pts ?? 0) >= pts) return
      yield* Effect.sleep("100 millis")
    }
  }).pipe(Effect.timeout("60 seconds"))

describe("update engine, the common sequence (basic groups)", () => {
  it.live("gaps in pushes filled by getDifference, and a restart's backlog through differenceSlice pages: exact equality", () =>
    Effect.gen(function*() {
      const sim = yield* TelegramSimulator.start({ differenceTimeout: 1 })
      const group = sim.world.addChannel({ title: "Desk", kind: "group" })
      const other = sim.world.addChannel({ title: "Other desk", kind: "group" })
      const setup = yield* makeSetup(sim)
      const ledger = new Ledger(sim)
      const settings = { ...fastEngine, channels: [`-${group.id}`, `-${other.id}`] }
      const early: Array<number> = []
      yield* Effect.scoped(Effect.gen(function*() {
        yield* runGateway(setup, settings)
        yield* awaitAccountPts(setup, 1)
        const differencesBefore = sim.callCount("updates.GetDifference")

        // A gap among pushes: three updates never pushed, revealed by the next one.
        for (let i = 1; i <= 10; i++) early.push(ledger.post(group, `desk ${i}`))
        sim.faults.skipUpdates(3)
        ledger.post(group, "desk 11, not pushed")
        ledger.edit(other, ledger.post(other, "other 1, not pushed"), "other 1, edited, not pushed")
        ledger.post(group, "desk 12, reveals the gap")
        yield* awaitExactEquality(setup, ledger)
        assert.isAbove(sim.callCount("updates.GetDifference"), differencesBefore, "the gap was filled by getDifference")

        // One push in five dropped, edits and deletions among them.
        sim.faults.pushFaults({ dropRatio: 0.2, seed: 7 })
        for (let i = 1; i <= 60; i++) {
          const chat = i % 3 === 0 ? other : group
          const id = ledger.post(chat, `${chat.title} burst ${i}`)
          if (i % 10 === 0) ledger.edit(chat, id, `${chat.title} burst ${i}, edited`)
          if (i % 15 === 0) ledger.delete(chat, [id])
        }
        sim.faults.pushFaults({})
        ledger.post(group, "after the burst")
        yield* awaitExactEquality(setup, ledger)
        yield* awaitAccountPts(setup, sim.world.commonPts)
      }))

      // Down: a backlog of more than three slices (100 updates each), then a restart.
      // Deletions of messages stored before the restart name ids only: the
      // restarted engine has not seen them, and finds their group in PostgreSQL.
      for (let i = 1; i <= 350; i++) {
        const chat = i % 2 === 0 ? other : group
        const id = ledger.post(chat, `${chat.title} while down ${i}`)
        if (i % 50 === 0) ledger.edit(chat, id, `${chat.title} while down ${i}, edited`)
        if (i % 100 === 0) ledger.delete(group, [early[i / 100 - 1]!, early[i / 100 + 4]!])
      }
      const before = sim.callCount("updates.GetDifference")
      yield* runGateway(setup, settings)
      yield* awaitExactEquality(setup, ledger)
      assert.isAtLeast(sim.callCount("updates.GetDifference") - before, 4, "slices until the difference is complete")
    }), { timeout: 180_000 })
})
