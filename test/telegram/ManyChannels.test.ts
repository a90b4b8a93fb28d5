/**
 * Many channels: 200 configured channels each with a backlog at start all
 * catch up (no deadlock, gotd #1658) without resolving any username again, and
 * 200 idle channels cost a steady request rate bounded by
 * `telegram.maxPollRate`.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { type ChannelRef, TelegramSimulator } from "../../src/simulator/index.ts"
import { awaitExactEquality, Ledger, runGateway } from "./EngineHarness.ts"
import { makeSetup } from "./Harness.ts"
import { query } from "../support/Database.ts"

const CHANNELS = 200

describe("update engine with 200 channels", () => {
  it.live("catches up a backlog on each of 200 channels at start, then polls them at a steady, bounded rate", () =>
    Effect.gen(function*() {
      const sim = yield* TelegramSimulator.start({ differenceTimeout: 1 })
      const channels: Array<ChannelRef> = Array.from({ length: CHANNELS }, (_, i) =>
        sim.world.addChannel({ username: `many_${String(i).padStart(3, "0")}`, title: `Many ${i}`, kind: "channel" }))
      const setup = yield* makeSetup(sim)
      const ledger = new Ledger(sim)
      const settings = {
        channels: channels.map((channel) => `@${channel.username}`),
        pollInterval: "1 second",
        maxPollRate: 40,
        stateFlushInterval: "300 millis"
      }
      yield* Effect.scoped(Effect.gen(function*() {
        yield* runGateway(setup, settings)
        while ((yield* query<{ count: number }>(setup.database, "SELECT count(*)::int AS count FROM telegram_channel_state"))[0]?.count !== CHANNELS) {
          yield* Effect.sleep("200 millis")
        }
      }))
      assert.strictEqual(sim.callCount("contacts.ResolveUsername"), CHANNELS)

      for (const channel of channels) {
        for (let i = 1; i <= 20; i++) ledger.post(channel, `${channel.username} backlog ${i}`)
        ledger.edit(channel, 3, `${channel.username} backlog 3, edited`)
        ledger.delete(channel, [5])
      }
      yield* runGateway(setup, settings)
      yield* awaitExactEquality(setup, ledger, "90 seconds")
      assert.strictEqual(sim.callCount("contacts.ResolveUsername"), CHANNELS, "access hashes come from PostgreSQL")

      // Idle: 200 channels / 40 polls per second = one poll per channel every 5 s, i.e. 40 requests/s.
      yield* Effect.sleep("6 seconds")
      const from = Date.now()
      const before = sim.callCount("updates.GetChannelDifference")
      yield* Effect.sleep("10 seconds")
      const rate = (sim.callCount("updates.GetChannelDifference") - before) / ((Date.now() - from) / 1000)
      assert.isAtMost(rate, 40 * 1.15, `steady rate ${rate.toFixed(1)}/s within maxPollRate`)
      assert.isAtLeast(rate, 40 * 0.7, `steady rate ${rate.toFixed(1)}/s: every channel still polled`)
    }), { timeout: 240_000 })
})
