/**
 * The real GramJS client, wired to a simulator for a test's scope: created and
 * destroyed (GramJS keeps timers) with the scope, connected under a deadline
 * because `connect()` can wait forever.
 */
import { Effect } from "effect"
import { Logger, TelegramClient } from "telegram"
import type { EventBuilder } from "telegram/events/common.js"
import { LogLevel } from "telegram/extensions/Logger.js"
import { StringSession } from "telegram/sessions/index.js"
import type { TelegramSimulator } from "../../src/simulator/index.ts"

export const API_ID = 1
export const API_HASH = "simulator"

/** A client for `sim`, not yet connected; destroyed when the scope closes. */
export const makeClient = (sim: TelegramSimulator) =>
  Effect.acquireRelease(
    Effect.sync(() =>
      new TelegramClient(new StringSession(sim.sessionString), API_ID, API_HASH, {
        ...sim.clientOptions,
        connectionRetries: 5,
        baseLogger: new Logger(LogLevel.NONE)
      })
    ),
    (client) => Effect.promise(() => client.destroy())
  )

/** A connected client for `sim`. */
export const connectedClient = (sim: TelegramSimulator) =>
  Effect.gen(function*() {
    const client = yield* makeClient(sim)
    const connected = yield* promise(() => client.connect())
    if (!connected) return yield* Effect.die(new Error("GramJS could not reach the simulator"))
    return client
  })

/** A GramJS promise, failing the test after 15 s instead of hanging it. */
export const promise = <A>(run: () => Promise<A>) =>
  Effect.tryPromise({ try: run, catch: (error) => error }).pipe(Effect.timeout("15 seconds"))

/** The next event `builder` matches, as a promise registered now (before the action that causes it). */
export const nextEvent = <E>(client: TelegramClient, builder: EventBuilder): Promise<E> =>
  new Promise<E>((resolve) => {
    const handler = (event: E) => {
      client.removeEventHandler(handler, builder)
      resolve(event)
    }
    client.addEventHandler(handler, builder)
  })
