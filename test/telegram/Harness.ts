/**
 * The Telegram source under test: the real GramJS client over TCP against the
 * simulator, its registry in a PostgreSQL database of the test's own, a
 * session file in a temporary 0700 directory, and every log line captured.
 */
import { Context, Effect, type Fiber, Layer, Logger, Redacted, Stream } from "effect"
import { ConfigProvider } from "effect"
import * as Fs from "node:fs/promises"
import * as Os from "node:os"
import * as Path from "node:path"
import type { MessageEvent } from "../../src/domain/Message.ts"
import * as GramJsTelegramSource from "../../src/layers/GramJsTelegramSource.ts"
import * as PgBackfillRequests from "../../src/layers/PgBackfillRequests.ts"
import * as PgChannelRegistry from "../../src/layers/PgChannelRegistry.ts"
import * as PgClient from "../../src/layers/PgClient.ts"
import * as PgUpdateStateStore from "../../src/layers/PgUpdateStateStore.ts"
import { writeSession } from "../../src/layers/SessionFile.ts"
import { TelegramSource } from "../../src/services/TelegramSource.ts"
import type { TelegramSimulator } from "../../src/simulator/index.ts"
import { makeTestDatabase, type TestDatabase } from "../support/Database.ts"

/** Log lines as JSON, for assertions on what was (and was not) logged. */
export const captureLogs = () => {
  const lines: Array<string> = []
  const logger = Logger.map(Logger.formatJson, (line) => void lines.push(line))
  return { lines, layer: Logger.layer([logger], { mergeWithExisting: false }) }
}

/** A scoped temporary directory holding `.session/` (0700). */
export const makeSessionDirectory = Effect.acquireRelease(
  Effect.promise(() => Fs.mkdtemp(Path.join(Os.tmpdir(), "tg-session-test-"))),
  (directory) => Effect.promise(() => Fs.rm(directory, { recursive: true, force: true }))
).pipe(Effect.map((directory) => Path.join(directory, ".session", "telegram.session")))

export interface SourceSetup {
  readonly sim: TelegramSimulator
  readonly database: TestDatabase
  readonly sessionFile: string
}

/** A simulator session written to a fresh session file, and a fresh database. */
export const makeSetup = (sim: TelegramSimulator) =>
  Effect.gen(function*() {
    const sessionFile = yield* makeSessionDirectory
    yield* writeSession(sessionFile, Redacted.make(sim.sessionString))
    const database = yield* makeTestDatabase("telegram")
    return { sim, database, sessionFile } satisfies SourceSetup
  })

/** The `telegram` configuration that reaches the setup's simulator with short timeouts, then `overrides`. */
export const simulatorTelegram = (setup: SourceSetup, overrides: Record<string, unknown>) => ({
  apiId: 1,
  apiHash: "simulator",
  sessionFile: setup.sessionFile,
  dcId: setup.sim.dcId,
  dcAddress: setup.sim.host,
  dcPort: setup.sim.port,
  connectTimeout: "5 seconds",
  callTimeout: "5 seconds",
  reconnectBaseDelay: "100 millis",
  reconnectMaxDelay: "500 millis",
  ...overrides
})

export const configFor = (setup: SourceSetup, telegram: Record<string, unknown>) =>
  ConfigProvider.layer(
    ConfigProvider.fromUnknown({
      database: { url: Redacted.value(setup.database.url) },
      telegram: simulatorTelegram(setup, telegram)
    })
  )

export const sourceLayer = (setup: SourceSetup, telegram: Record<string, unknown>) =>
  GramJsTelegramSource.layerNoDeps.pipe(
    Layer.provide(Layer.mergeAll(PgChannelRegistry.layerNoDeps, PgUpdateStateStore.layerNoDeps, PgBackfillRequests.layerNoDeps)),
    Layer.provide(PgClient.layer),
    Layer.provide(configFor(setup, telegram))
  )

export interface RunningSource {
  readonly source: TelegramSource["Service"]
  /** Every event so far, in order. */
  readonly events: Array<MessageEvent>
  /** How many events each source batch carried, in order. */
  readonly batchSizes: Array<number>
  /** The stream's end: a failure when it failed. */
  readonly ended: Fiber.Fiber<void, unknown>
}

/** Builds the source in the current scope and collects its events, acknowledging each batch as if committed. */
export const startSource = (setup: SourceSetup, telegram: Record<string, unknown> = {}) =>
  Effect.gen(function*() {
    const context = yield* Layer.build(sourceLayer(setup, telegram))
    const source = Context.get(context, TelegramSource)
    const events: Array<MessageEvent> = []
    const batchSizes: Array<number> = []
    const ended = yield* source.events.pipe(
      Stream.runForEach((batch) =>
        Effect.sync(() => {
          events.push(...batch.events)
          batchSizes.push(batch.events.length)
        }).pipe(Effect.andThen(batch.onCommitted))
      ),
      Effect.forkScoped
    )
    return { source, events, batchSizes, ended } satisfies RunningSource
  })
