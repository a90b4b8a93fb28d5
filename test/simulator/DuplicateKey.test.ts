import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { Api } from "telegram"
import { RPCError } from "telegram/errors/index.js"
import { TelegramSimulator } from "../../src/simulator/index.ts"
import { connectedClient, makeClient, promise } from "./SimulatorClient.ts"

const getSelf = new Api.users.GetUsers({ id: [new Api.InputUserSelf()] })

describe("TelegramSimulator: one auth key, two connections", () => {
  it.live("answers AUTH_KEY_DUPLICATED once two connections use the key at once, and records both", () =>
    Effect.gen(function*() {
      const sim = yield* TelegramSimulator.start({ log: () => {} })
      const first = yield* connectedClient(sim)
      const second = yield* connectedClient(sim)
      yield* promise(() => second.invoke(getSelf)).pipe(Effect.ignore)

      // The first speaks again while the second is open and has used the key.
      const error = yield* promise(() => first.invoke(getSelf)).pipe(Effect.flip)

      assert.instanceOf(error, RPCError)
      assert.strictEqual((error as RPCError).errorMessage, "AUTH_KEY_DUPLICATED")
      assert.strictEqual((error as RPCError).code, 406)
      const again = yield* promise(() => second.invoke(getSelf)).pipe(Effect.flip)
      assert.strictEqual((again as RPCError).errorMessage, "AUTH_KEY_DUPLICATED")
      assert.strictEqual(sim.connections.length, 2)
      assert.isTrue(sim.connections.every((connection) => connection.firstUseAt !== undefined && connection.closedAt === undefined))
    }))

  it.live("a connection that closed before the next one opened is no duplicate", () =>
    Effect.gen(function*() {
      const sim = yield* TelegramSimulator.start({ log: () => {} })
      yield* Effect.scoped(Effect.gen(function*() {
        const first = yield* connectedClient(sim)
        yield* promise(() => first.invoke(getSelf))
      }))
      yield* Effect.promise(() => waitUntil(() => sim.connections[0]?.closedAt !== undefined))
      const next = yield* makeClient(sim)
      yield* promise(() => next.connect())

      const users = yield* promise(() => next.invoke(getSelf))

      assert.strictEqual((users[0] as Api.User).username, "sim_self")
      assert.strictEqual(sim.connections.length, 2)
      assert.isAtMost(sim.connections[0]!.closedAt!, sim.connections[1]!.openedAt)
    }))
})

const waitUntil = async (condition: () => boolean) => {
  const deadline = Date.now() + 10_000
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("condition not met within 10 s")
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}
