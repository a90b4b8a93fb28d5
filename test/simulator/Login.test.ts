import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { Api, password as Password } from "telegram"
import type { RPCError } from "telegram/errors/index.js"
import { TelegramSimulator } from "../../src/simulator/index.ts"
import { API_HASH, API_ID, connectedClient, makeClient, promise } from "./SimulatorClient.ts"

describe("TelegramSimulator login", () => {
  it.live("signs in with the fixed code and a two-step password through GramJS's start()", () =>
    Effect.gen(function*() {
      const sim = yield* TelegramSimulator.start({ authorized: false, password: "correct horse" })
      const client = yield* makeClient(sim)
      const errors: Array<unknown> = []

      yield* promise(() =>
        client.start({
          phoneNumber: "+15550000001",
          phoneCode: async () => "12345",
          password: async () => "correct horse",
          onError: (error) => void errors.push(error)
        })
      )

      assert.deepStrictEqual(errors, [])
      assert.isTrue(sim.isAuthorized())
      const me = yield* promise(() => client.getMe())
      assert.strictEqual(me.username, "sim_self")
      assert.strictEqual(sim.callCount("auth.CheckPassword"), 1)
    }))

  it.live("refuses calls before sign-in and a wrong code or password", () =>
    Effect.gen(function*() {
      const sim = yield* TelegramSimulator.start({ authorized: false, password: "correct horse" })
      const client = yield* connectedClient(sim)

      const unauthorized = yield* promise(() => client.invoke(new Api.updates.GetState())).pipe(Effect.flip)
      assert.strictEqual((unauthorized as RPCError).errorMessage, "AUTH_KEY_UNREGISTERED")

      const sent = yield* promise(() =>
        client.invoke(new Api.auth.SendCode({
          phoneNumber: "+15550000001",
          apiId: API_ID,
          apiHash: API_HASH,
          settings: new Api.CodeSettings({})
        }))
      )
      const phoneCodeHash = (sent as Api.auth.SentCode).phoneCodeHash
      const signIn = (phoneCode: string) =>
        promise(() => client.invoke(new Api.auth.SignIn({ phoneNumber: "+15550000001", phoneCodeHash, phoneCode })))
      assert.strictEqual(((yield* Effect.flip(signIn("00000"))) as RPCError).errorMessage, "PHONE_CODE_INVALID")
      assert.strictEqual(((yield* Effect.flip(signIn("12345"))) as RPCError).errorMessage, "SESSION_PASSWORD_NEEDED")

      const passwordInfo = yield* promise(() => client.invoke(new Api.account.GetPassword()))
      const wrongProof = yield* promise(() => Password.computeCheck(passwordInfo, "wrong horse"))
      const wrong = yield* promise(() => client.invoke(new Api.auth.CheckPassword({ password: wrongProof }))).pipe(Effect.flip)
      assert.strictEqual((wrong as RPCError).errorMessage, "PASSWORD_HASH_INVALID")
      assert.isFalse(sim.isAuthorized())
    }))

  it.live("logs out", () =>
    Effect.gen(function*() {
      const sim = yield* TelegramSimulator.start()
      const client = yield* connectedClient(sim)

      const result = yield* promise(() => client.invoke(new Api.auth.LogOut()))

      assert.instanceOf(result, Api.auth.LoggedOut)
      assert.isFalse(sim.isAuthorized())
    }))
})
