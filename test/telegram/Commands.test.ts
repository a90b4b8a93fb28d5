/** `login`, `logout` and `channels` against the simulator, with the real GramJS client. */
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Effect, Option, Redacted } from "effect"
import * as Fs from "node:fs/promises"
import * as Path from "node:path"
import { readSession, writeSession } from "../../src/layers/SessionFile.ts"
import { formatChats, listChats } from "../../src/programs/commands/Channels.ts"
import { signIn } from "../../src/programs/commands/Login.ts"
import { signOut } from "../../src/programs/commands/Logout.ts"
import type { Prompt } from "../../src/programs/commands/Prompt.ts"
import { type TelegramSimulator, TelegramSimulator as Simulator } from "../../src/simulator/index.ts"
import { captureLogs, makeSessionDirectory } from "./Harness.ts"
import * as Cli from "../../src/main/Cli.ts"

const configFor = (sim: TelegramSimulator, sessionFile: string) =>
  ConfigProvider.layer(ConfigProvider.fromUnknown({
    telegram: {
      apiId: 1,
      apiHash: "simulator",
      sessionFile,
      dcId: sim.dcId,
      dcAddress: sim.host,
      dcPort: sim.port,
      connectTimeout: "5 seconds",
      callTimeout: "5 seconds"
    }
  }))

const mode = (path: string) => Effect.promise(() => Fs.stat(path).then((stat) => stat.mode & 0o777))

/** Answers every question from a script, recording what was asked. */
const scriptedPrompt = (answers: Record<string, string>) => {
  const asked: Array<string> = []
  const reply = (question: string) => {
    asked.push(question)
    const key = Object.keys(answers).find((candidate) => question.includes(candidate))
    return Effect.succeed(key === undefined ? "" : answers[key] ?? "")
  }
  const prompt: Prompt = { ask: reply, askSecret: (question) => reply(question).pipe(Effect.map(Redacted.make)) }
  return { asked, prompt }
}

const noPrompt: Prompt = {
  ask: (question) => Effect.die(new Error(`unexpected question: ${question}`)),
  askSecret: (question) => Effect.die(new Error(`unexpected question: ${question}`))
}

describe("CLI commands", () => {
  it.live("login signs in from flags with a two-step password and writes a 0600 session in a 0700 directory, never logging it", () =>
    Effect.gen(function*() {
      const sim = yield* Simulator.start({ authorized: false, password: "correct horse" })
      const sessionFile = yield* makeSessionDirectory
      const logs = captureLogs()
      const previousUmask = process.umask(0o022)
      yield* Effect.addFinalizer(() => Effect.sync(() => process.umask(previousUmask)))

      yield* signIn(
        {
          phone: Option.some("+15550000001"),
          code: Option.some("12345"),
          password: Option.some(Redacted.make("correct horse"))
        },
        noPrompt,
        Redacted.make(sim.sessionString)
      ).pipe(Effect.provide(Cli.services), Effect.provide(configFor(sim, sessionFile)), Effect.provide(logs.layer))

      assert.isTrue(sim.isAuthorized())
      assert.strictEqual(yield* mode(sessionFile), 0o600)
      assert.strictEqual(yield* mode(Path.dirname(sessionFile)), 0o700)
      const stored = yield* readSession(sessionFile)
      const session = Redacted.value(stored.session)
      assert.strictEqual(stored.dcId, sim.dcId)
      assert.isAbove(session.length, 300)
      assert.isTrue(logs.lines.some((line) => line.includes("signed in as @sim_self")))
      const authKey = Buffer.from(session.slice(1), "base64").subarray(-256).toString("base64")
      for (const line of logs.lines) {
        assert.notInclude(line, session)
        assert.notInclude(line, authKey)
        assert.notInclude(line, "correct horse")
      }
    }))

  it.live("login asks for what the flags do not give, the password without echo", () =>
    Effect.gen(function*() {
      const sim = yield* Simulator.start({ authorized: false, password: "correct horse" })
      const sessionFile = yield* makeSessionDirectory
      const { asked, prompt } = scriptedPrompt({ "Phone": "+15550000001", "code": "12345", "password": "correct horse" })

      yield* signIn({ phone: Option.none(), code: Option.none(), password: Option.none() }, prompt, Redacted.make(sim.sessionString)).pipe(
        Effect.provide(Cli.services), Effect.provide(configFor(sim, sessionFile))
      )

      assert.strictEqual(asked.length, 3)
      assert.isTrue(sim.isAuthorized())
    }))

  it.live("login with a wrong code fails with Telegram's reason and writes nothing", () =>
    Effect.gen(function*() {
      const sim = yield* Simulator.start({ authorized: false })
      const sessionFile = yield* makeSessionDirectory

      const error = yield* signIn(
        { phone: Option.some("+15550000001"), code: Option.some("00000"), password: Option.none() },
        noPrompt,
        Redacted.make(sim.sessionString)
      ).pipe(Effect.provide(Cli.services), Effect.provide(configFor(sim, sessionFile)), Effect.flip)

      assert.include(error.message, "PHONE_CODE_INVALID")
      assert.isFalse(yield* Effect.promise(() => Fs.access(sessionFile).then(() => true, () => false)))
    }))

  it.live("logout ends the session on Telegram and deletes the file", () =>
    Effect.gen(function*() {
      const sim = yield* Simulator.start()
      const sessionFile = yield* makeSessionDirectory
      yield* writeSession(sessionFile, Redacted.make(sim.sessionString))

      yield* signOut().pipe(Effect.provide(Cli.services), Effect.provide(configFor(sim, sessionFile)))

      assert.isFalse(sim.isAuthorized())
      assert.strictEqual(sim.callCount("auth.LogOut"), 1)
      assert.isFalse(yield* Effect.promise(() => Fs.access(sessionFile).then(() => true, () => false)))
    }))

  it.live("channels lists the chats the account sees, with config-ready ids, kinds and usernames", () =>
    Effect.gen(function*() {
      const sim = yield* Simulator.start()
      const news = sim.world.addChannel({ username: "newsroom", title: "News", kind: "channel" })
      const group = sim.world.addChannel({ title: "Private desk", kind: "supergroup" })
      const sessionFile = yield* makeSessionDirectory
      yield* writeSession(sessionFile, Redacted.make(sim.sessionString))

      const chats = yield* listChats().pipe(Effect.provide(Cli.services), Effect.provide(configFor(sim, sessionFile)))
      const table = formatChats(chats)

      assert.sameDeepMembers(chats.map((chat) => [chat.channelId, chat.kind, chat.username]), [
        [news.id, "channel", "newsroom"],
        [group.id, "supergroup", null]
      ])
      assert.match(table, new RegExp(`-100${news.id}\\s+channel\\s+@newsroom\\s+News`))
      assert.match(table, new RegExp(`-100${group.id}\\s+supergroup\\s+-\\s+Private desk`))
    }))
})
