import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Net from "node:net"
import { Api } from "telegram"
import { FloodWaitError, RPCError } from "telegram/errors/index.js"
import { FATAL_ERRORS, type FatalError, TelegramSimulator } from "../../src/simulator/index.ts"
import { connectedClient, promise } from "./SimulatorClient.ts"

const getSelf = new Api.users.GetUsers({ id: [new Api.InputUserSelf()] })

describe("TelegramSimulator faults", () => {
  it.live("a short FLOOD_WAIT is slept through by the client, which then succeeds", () =>
    Effect.gen(function*() {
      const sim = yield* TelegramSimulator.start()
      sim.world.addChannel({ username: "newsroom", title: "News", kind: "channel" })
      const client = yield* connectedClient(sim)
      sim.faults.floodWait("contacts.ResolveUsername", 1)
      const started = Date.now()

      const entity = yield* promise(() => client.getEntity("newsroom"))

      assert.strictEqual((entity as Api.Channel).title, "News")
      assert.isAtLeast(Date.now() - started, 1000)
      assert.strictEqual(sim.callCount("contacts.ResolveUsername"), 2)
    }))

  it.live("a long FLOOD_WAIT surfaces as FloodWaitError with its seconds", () =>
    Effect.gen(function*() {
      const sim = yield* TelegramSimulator.start()
      const client = yield* connectedClient(sim)
      sim.faults.floodWait("users.GetUsers", 3600, 2)

      const error = yield* promise(() => client.invoke(getSelf)).pipe(Effect.flip)

      assert.instanceOf(error, FloodWaitError)
      assert.strictEqual((error as FloodWaitError).seconds, 3600)
      const second = yield* promise(() => client.invoke(getSelf)).pipe(Effect.flip)
      assert.instanceOf(second, FloodWaitError)
      const third = yield* promise(() => client.invoke(getSelf))
      assert.strictEqual((third[0] as Api.User).username, "sim_self")
    }))

  for (const name of Object.keys(FATAL_ERRORS) as Array<FatalError>) {
    it.live(`${name} reaches the client as an RPCError with code ${FATAL_ERRORS[name]}`, () =>
      Effect.gen(function*() {
        const sim = yield* TelegramSimulator.start()
        const client = yield* connectedClient(sim)
        sim.faults.fatal(name)

        const error = yield* promise(() => client.invoke(getSelf)).pipe(Effect.flip)

        assert.instanceOf(error, RPCError)
        assert.strictEqual((error as RPCError).errorMessage, name)
        assert.strictEqual((error as RPCError).code, FATAL_ERRORS[name])
      }))
  }

  it.live("after dropConnections the client reconnects and is served again", () =>
    Effect.gen(function*() {
      const sim = yield* TelegramSimulator.start()
      const client = yield* connectedClient(sim)
      yield* promise(() => client.getMe())

      sim.faults.dropConnections()
      yield* Effect.sleep("200 millis")
      const me = yield* promise(() => client.getMe())

      assert.strictEqual(me.username, "sim_self")
      assert.strictEqual(sim.connectionCount(), 2, "the client opened a new connection")
    }))

  it.live("delays a method's answer, and never answers a hung one", () =>
    Effect.gen(function*() {
      const sim = yield* TelegramSimulator.start()
      const client = yield* connectedClient(sim)
      sim.faults.delay("users.GetUsers", 400)
      const started = Date.now()
      yield* promise(() => client.invoke(getSelf))
      assert.isAtLeast(Date.now() - started, 400)

      sim.faults.hang("updates.GetState")
      const hung = yield* Effect.promise(() => client.invoke(new Api.updates.GetState())).pipe(
        Effect.timeoutOption("700 millis")
      )
      assert.isTrue(hung._tag === "None")

      sim.faults.clear()
      const state = yield* promise(() => client.invoke(new Api.updates.GetState()))
      assert.instanceOf(state, Api.updates.State)
    }))

  it.live("answers an unknown method with 400 METHOD_INVALID and logs its name", () =>
    Effect.gen(function*() {
      const logged: Array<string> = []
      const sim = yield* TelegramSimulator.start({ log: (line) => logged.push(line) })
      const client = yield* connectedClient(sim)

      const error = yield* promise(() => client.invoke(new Api.help.GetNearestDc())).pipe(Effect.flip)

      assert.strictEqual((error as RPCError).errorMessage, "METHOD_INVALID")
      assert.strictEqual((error as RPCError).code, 400)
      assert.isTrue(logged.some((line) => line.includes("help.GetNearestDc")))
    }))

  it.live("closes a connection that does not speak TCP Full, saying why", () =>
    Effect.gen(function*() {
      const logged: Array<string> = []
      const sim = yield* TelegramSimulator.start({ log: (line) => logged.push(line) })

      yield* Effect.callback<void>((resume) => {
        const socket = Net.connect(sim.port, sim.host, () => socket.write(Buffer.from([0xef, 1, 2, 3, 4, 5, 6, 7, 8])))
        socket.on("close", () => resume(Effect.void))
        socket.on("error", () => undefined)
      })

      assert.isTrue(logged.some((line) => line.includes("only the MTProto TCP Full transport is supported")))
    }))
})
