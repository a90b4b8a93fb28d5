/** The session file's checks at start, and its atomic, private write. */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Layer, Redacted, Runtime } from "effect"
import * as Fs from "node:fs/promises"
import * as Path from "node:path"
import { readSession, writeSession } from "../../src/layers/SessionFile.ts"
import { TelegramSimulator } from "../../src/simulator/index.ts"
import { captureLogs, makeSessionDirectory, makeSetup, sourceLayer } from "./Harness.ts"

const mode = (path: string) => Effect.promise(() => Fs.stat(path).then((stat) => stat.mode & 0o777))

const failureOf = <A, E>(exit: Exit.Exit<A, E>) => {
  if (!Exit.isFailure(exit)) return undefined
  const reason = exit.cause.reasons.find((candidate) => candidate._tag === "Fail")
  return reason?._tag === "Fail" ? reason.error : undefined
}

describe("session file", () => {
  it.live("a missing file stops the source with the first-time setup message and a non-zero exit code", () =>
    Effect.gen(function*() {
      const sim = yield* TelegramSimulator.start()
      const setup = yield* makeSetup(sim)
      const missing = Path.join(Path.dirname(setup.sessionFile), "absent.session")

      const exit = yield* Effect.exit(Layer.build(sourceLayer({ ...setup, sessionFile: missing }, { channels: [] })))

      const error = failureOf(exit) as { message: string; [Runtime.errorExitCode]: number } | undefined
      assert.strictEqual(
        error?.message,
        `session file not found at ${missing}: first-time setup required, run 'telegram-gateway login'`
      )
      assert.strictEqual(error?.[Runtime.errorExitCode], 66)
      assert.strictEqual(sim.connectionCount(), 0)
    }))

  it.live("warns, naming the mode, when the file or its directory is readable by others", () =>
    Effect.gen(function*() {
      const path = yield* makeSessionDirectory
      const session = Redacted.make((yield* TelegramSimulator.start()).sessionString)
      yield* writeSession(path, session)
      yield* Effect.promise(() => Fs.chmod(path, 0o644))
      yield* Effect.promise(() => Fs.chmod(Path.dirname(path), 0o755))
      const logs = captureLogs()

      const stored = yield* readSession(path).pipe(Effect.provide(logs.layer))

      assert.strictEqual(Redacted.value(stored.session), Redacted.value(session))
      assert.isTrue(logs.lines.some((line) => line.includes(`session file ${path} has mode 0644`)))
      assert.isTrue(logs.lines.some((line) => line.includes(`session directory ${Path.dirname(path)} has mode 0755`)))
      assert.isFalse(logs.lines.some((line) => line.includes(Redacted.value(session))))
    }))

  it.live("stays quiet about permissions at 0600 in a 0700 directory", () =>
    Effect.gen(function*() {
      const path = yield* makeSessionDirectory
      yield* writeSession(path, Redacted.make((yield* TelegramSimulator.start()).sessionString))
      const logs = captureLogs()
      yield* readSession(path).pipe(Effect.provide(logs.layer))
      assert.deepStrictEqual(logs.lines, [])
    }))

  for (
    const [what, content] of [
      ["empty", ""],
      ["not a session", "hello world"],
      ["truncated", "1AgAJMTI3LjAuMC4x"]
    ] as const
  ) {
    it.live(`a corrupt file (${what}) is a clear error that never quotes the file`, () =>
      Effect.gen(function*() {
        const path = yield* makeSessionDirectory
        yield* writeSession(path, Redacted.make(content))

        const error = yield* readSession(path).pipe(Effect.flip)

        assert.strictEqual(error.problem, "corrupt")
        assert.match(error.message, new RegExp(`^session file at ${path} is corrupt \\(.+\\): run 'telegram-gateway login'`))
        if (content.length > 0) assert.notInclude(error.message, content)
        assert.strictEqual(error[Runtime.errorExitCode], 65)
      }))
  }

  it.live("an unreadable file is a clear error", () =>
    Effect.gen(function*() {
      const path = yield* makeSessionDirectory
      yield* Effect.promise(() => Fs.mkdir(path, { recursive: true }))
      const error = yield* readSession(path).pipe(Effect.flip)
      assert.strictEqual(error.problem, "unreadable")
      assert.include(error.message, `session file at ${path} cannot be read`)
    }))

  it.live("is written atomically with mode 0600 in a new 0700 directory, leaving no temporary file", () =>
    Effect.gen(function*() {
      const path = yield* makeSessionDirectory
      const previousUmask = process.umask(0o022)
      yield* Effect.addFinalizer(() => Effect.sync(() => process.umask(previousUmask)))

      yield* writeSession(path, Redacted.make("first"))
      yield* writeSession(path, Redacted.make("second"))

      assert.strictEqual(yield* mode(path), 0o600)
      assert.strictEqual(yield* mode(Path.dirname(path)), 0o700)
      assert.strictEqual((yield* Effect.promise(() => Fs.readFile(path, "utf8"))).trim(), "second")
      assert.deepStrictEqual(yield* Effect.promise(() => Fs.readdir(Path.dirname(path))), [Path.basename(path)])
    }))
})
