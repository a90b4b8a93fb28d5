import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { TelegramSimulator } from "../../src/simulator/index.ts"
import { connectedClient, promise } from "./SimulatorClient.ts"

describe("TelegramSimulator connection", () => {
  it.live("serves connect and getMe to the real GramJS client", () =>
    Effect.gen(function*() {
      const sim = yield* TelegramSimulator.start()
      const client = yield* connectedClient(sim)
      const me = yield* promise(() => client.getMe())
      assert.strictEqual(me.username, "sim_self")
      assert.isTrue(me.self)
      assert.deepStrictEqual(sim.calls.map((c) => c.method), ["help.GetConfig", "users.GetUsers"])
    }))
})
