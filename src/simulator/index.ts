/**
 * A Telegram test double: an MTProto 2.0 server on 127.0.0.1 that the real
 * GramJS client talks to over TCP, with a scripted world (channels, history,
 * pts), pushed updates and injectable faults.
 *
 * ```ts
 * const sim = yield* TelegramSimulator.start({ differenceTooLongAfter: 50 })   // closes with the scope
 * const news = sim.world.addChannel({ username: "newsroom", title: "News", kind: "channel" })
 * const client = new TelegramClient(new StringSession(sim.sessionString), 1, "hash", sim.clientOptions)
 * sim.world.post(news, { text: "hello" })       // pushed as UpdateNewChannelMessage
 * sim.faults.floodWait("messages.GetHistory", 3)
 * sim.faults.pushFaults({ dropRatio: 0.2, duplicateRatio: 0.1, reorderWindow: 5 })
 * sim.settings.differenceTimeout = 300             // the `timeout` getChannelDifference answers carry
 * sim.callCount("contacts.ResolveUsername")
 * ```
 *
 * Deliberate simplifications, each where Telegram's behaviour does not matter to a client:
 * - no key exchange: the auth key travels in the session string;
 * - one account, one DC, one server salt; no private chats: the common sequence
 *   (`updates.getState`, `updates.getDifference` with `differenceSlice` pages of 100) carries
 *   basic groups only (`addChannel({ kind: "group" })`), with no qts and no seq;
 * - `messages.getDialogs` returns every channel in one answer (no paging);
 * - `messages.getHistory` applies min_id/max_id before offset_id/add_offset/limit.
 */
import { Effect } from "effect"
import type { ConnectionTCPFull } from "telegram/network/connection/TCPFull.js"
import { connectionToPort } from "./ClientConnection.ts"
import type { Faults } from "./Faults.ts"
import type { DifferenceSettings } from "./Handlers.ts"
import { type AckRecord, type CallRecord, type ConnectionRecord, SimulatorServer, type SimulatorOptions } from "./Server.ts"
import type { World } from "./World.ts"

export { connectionToPort } from "./ClientConnection.ts"
export { FATAL_ERRORS, type FatalError, Faults, type PushFaults } from "./Faults.ts"
export { type DifferenceSettings, pageHistory } from "./Handlers.ts"
export type { AckRecord, CallRecord, ConnectionRecord, SimulatorOptions } from "./Server.ts"
export {
  type ChannelKind,
  type ChannelRef,
  type ChannelSelector,
  type PostInput,
  InvalidUsernameError,
  type PtsEntry,
  UnknownChannelError,
  UnknownMessageError,
  World
} from "./World.ts"

export interface TelegramSimulator {
  readonly host: string
  readonly port: number
  readonly dcId: number
  /** A GramJS StringSession holding this server's address and auth key. */
  readonly sessionString: string
  /** GramJS client options that reach this server: `{ connection, useWSS: false }`. */
  readonly clientOptions: { readonly connection: typeof ConnectionTCPFull; readonly useWSS: false }
  readonly world: World
  readonly faults: Faults
  /** How getChannelDifference answers (too-long threshold, `timeout`); mutable. */
  readonly settings: DifferenceSettings
  /** Every call made, in order, by innermost method name (e.g. "messages.GetHistory"). */
  readonly calls: ReadonlyArray<CallRecord>
  callCount(method: string): number
  /** Every msgs_ack clients sent, in order, with how many ids each acknowledged. */
  readonly acks: ReadonlyArray<AckRecord>
  /** TCP connections accepted so far; a client that reconnected has made more than one. */
  connectionCount(): number
  /** Every connection accepted, with when it opened, closed and used the key (two used at once: AUTH_KEY_DUPLICATED). */
  readonly connections: ReadonlyArray<ConnectionRecord>
  /** Whether the account is signed in (false after auth.logOut, true after a login flow). */
  isAuthorized(): boolean
}

const toPublic = (server: SimulatorServer): TelegramSimulator => ({
  host: server.host,
  port: server.port,
  dcId: server.dcId,
  sessionString: server.sessionString,
  clientOptions: { connection: connectionToPort(server.port), useWSS: false },
  world: server.world,
  faults: server.faults,
  settings: server.settings,
  calls: server.calls,
  callCount: (method) => server.calls.filter((call) => call.method === method).length,
  acks: server.acks,
  connectionCount: () => server.connectionsAccepted,
  connections: server.connectionLog,
  isAuthorized: () => server.account.authorized
})

export const TelegramSimulator = {
  /** Starts a simulator for the current scope; protocol warnings go to the Effect logger. */
  start: Effect.fn("TelegramSimulator.start")(function*(options: SimulatorOptions = {}) {
    const context = yield* Effect.context<never>()
    const log = options.log ??
      ((line: string) => {
        Effect.runForkWith(context)(Effect.logWarning(line).pipe(Effect.annotateLogs("component", "telegram-simulator")))
      })
    const server = yield* Effect.acquireRelease(
      Effect.promise(() => SimulatorServer.start({ ...options, log })),
      (server) => Effect.promise(() => server.close())
    )
    return toPublic(server)
  }),

  /** The same without Effect: call `close()` when done. */
  startPromise: async (options: SimulatorOptions = {}): Promise<TelegramSimulator & { close(): Promise<void> }> => {
    const server = await SimulatorServer.start(options)
    return Object.assign(toPublic(server), { close: () => server.close() })
  }
}
