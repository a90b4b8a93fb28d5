/**
 * `login --account NAME` writes the session file of that account of
 * `telegram.accounts`, and nothing else; `logout` and `channels` take the
 * same flag and use that account's session file and DC.
 */
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Effect, Option, Redacted } from "effect"
import * as Fs from "node:fs/promises"
import * as Path from "node:path"
import { readSession, writeSession } from "../../src/layers/SessionFile.ts"
import { listChats } from "../../src/programs/commands/Channels.ts"
import { signIn } from "../../src/programs/commands/Login.ts"
import { signOut } from "../../src/programs/commands/Logout.ts"
import type { Prompt } from "../../src/programs/commands/Prompt.ts"
import { type TelegramSimulator, TelegramSimulator as Simulator } from "../../src/simulator/index.ts"
import { makeSessionDirectory } from "./Harness.ts"
import * as Cli from "../../src/main/Cli.ts"

const noPrompt: Prompt = {
  ask: (question) => Effect.die(new Error(`unexpected question: ${question}`)),
  askSecret: (question) => Effect.die(new Error(`unexpected question: ${question}`))
}

const configFor = (sim: TelegramSimulator, directory: string, markets?: TelegramSimulator) =>
  ConfigProvider.layer(ConfigProvider.fromUnknown({
    telegram: {
      apiId: 1,
      apiHash: "simulator",
      sessionFile: Path.join(directory, "telegram.session"),
      dcId: sim.dcId,
      dcAddress: sim.host,
      dcPort: sim.port,
      connectTimeout: "5 seconds",
      callTimeout: "5 seconds",
      accounts: [
        { name: "news", sessionFile: Path.join(directory, "news.session"), channels: ["@newsroom"] },
        {
          name: "markets",
          sessionFile: Path.join(directory, "markets.session"),
          channels: ["@tickers"],
          ...(markets === undefined ? {} : { dcId: markets.dcId, dcAddress: markets.host, dcPort: markets.port })
        }
      ]
    }
  }))

const exists = (path: string) => Effect.promise(() => Fs.access(path).then(() => true, () => false))

describe("login --account", () => {
  it.live("writes the named account's session file only", () =>
    Effect.gen(function*() {
      const sim = yield* Simulator.start({ authorized: false })
      const directory = Path.dirname(yield* makeSessionDirectory)

      yield* signIn(
        { account: Option.some("markets"), phone: Option.some("+15550000001"), code: Option.some("12345"), password: Option.none() },
        noPrompt,
        Redacted.make(sim.sessionString)
      ).pipe(Effect.provide(Cli.services), Effect.provide(configFor(sim, directory)))

      assert.strictEqual((yield* readSession(Path.join(directory, "markets.session"))).dcId, sim.dcId)
      assert.isFalse(yield* exists(Path.join(directory, "news.session")))
      assert.isFalse(yield* exists(Path.join(directory, "telegram.session")))
    }))

  it.live("names the configured accounts when the account is unknown", () =>
    Effect.gen(function*() {
      const sim = yield* Simulator.start({ authorized: false })
      const directory = Path.dirname(yield* makeSessionDirectory)

      const error = yield* signIn(
        { account: Option.some("sports"), phone: Option.some("+15550000001"), code: Option.some("12345"), password: Option.none() },
        noPrompt,
        Redacted.make(sim.sessionString)
      ).pipe(Effect.provide(Cli.services), Effect.provide(configFor(sim, directory)), Effect.flip)

      assert.strictEqual(error._tag, "InvalidConfiguration")
      assert.include(error.message, "--account sports: telegram.accounts has no such account (configured: news, markets)")
      assert.isFalse(sim.isAuthorized())
    }))

  it.live("logout and channels --account use that account's session file and DC, and leave the others alone", () =>
    Effect.gen(function*() {
      const newsSim = yield* Simulator.start()
      const marketsSim = yield* Simulator.start()
      marketsSim.world.addChannel({ username: "tickers", title: "Tickers", kind: "channel" })
      newsSim.world.addChannel({ username: "newsroom", title: "News", kind: "channel" })
      const directory = Path.dirname(yield* makeSessionDirectory)
      yield* writeSession(Path.join(directory, "news.session"), Redacted.make(newsSim.sessionString))
      yield* writeSession(Path.join(directory, "markets.session"), Redacted.make(marketsSim.sessionString))
      const config = configFor(newsSim, directory, marketsSim)

      const chats = yield* listChats(Option.some("markets")).pipe(Effect.provide(Cli.services), Effect.provide(config))
      assert.deepStrictEqual(chats.map((chat) => chat.username), ["tickers"])

      yield* signOut(Option.some("markets")).pipe(Effect.provide(Cli.services), Effect.provide(config))
      assert.isFalse(marketsSim.isAuthorized())
      assert.isTrue(newsSim.isAuthorized())
      assert.strictEqual(newsSim.connectionCount(), 0)
      assert.isFalse(yield* exists(Path.join(directory, "markets.session")))
      assert.isTrue(yield* exists(Path.join(directory, "news.session")))

      const unknown = yield* listChats(Option.some("sports")).pipe(Effect.provide(Cli.services), Effect.provide(config), Effect.flip)
      assert.include(unknown.message, "--account sports: telegram.accounts has no such account (configured: news, markets)")
    }))
})
