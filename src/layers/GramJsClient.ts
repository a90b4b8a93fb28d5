/**
 * One GramJS client, made safe to use from Effect (TELEGRAM.md has the facts
 * this works around):
 * - it dials the configured port: GramJS ignores the session's and dials 80,
 *   so the connection class pins it (GramJS's own reconnects reuse the class);
 * - connect and every call have a deadline: GramJS can wait forever;
 * - FLOOD_WAITs all surface here (GramJS's own sleeping is off), so they are
 *   counted by method; short ones are slept on an Effect timer, long ones fail
 *   with `TelegramFloodWait` for the caller to schedule;
 * - the fatal session errors become `TelegramFatal`;
 * - a dropped connection resolves `lost` once; from then on the client is
 *   retired and its connection class refuses to dial again, so GramJS's
 *   internal reconnect cannot leave a zombie socket behind. The owner
 *   reconnects with a new client (src/layers/GramJsTelegramSource.ts).
 * - nothing is sent with the key unless `KeyGuard` allows it at that instant
 *   (the lease's local deadline, src/programs/AccountOwner.ts).
 * The client is destroyed with the scope (it keeps timers).
 */
import { Deferred, Duration, Effect, Metric, Redacted } from "effect"
import { Logger, TelegramClient } from "telegram"
import { FloodWaitError, RPCError } from "telegram/errors/index.js"
import { LogLevel } from "telegram/extensions/Logger.js"
import { ConnectionTCPFull } from "telegram/network/connection/TCPFull.js"
import { StringSession } from "telegram/sessions/index.js"
import type { Api } from "telegram/tl/api.js"
import { KeyGuard } from "../services/AccountLeases.ts"
import type { TelegramConfig } from "../services/GatewayConfig.ts"
import * as Metrics from "../services/Metrics.ts"
import { isFatalReason, TelegramCallError, TelegramFatal, TelegramFloodWait } from "../services/TelegramSource.ts"
import type { StoredSession } from "./SessionFile.ts"

/** Telegram's production DC 2, for a first login when neither config nor a session names a DC. */
const defaultDc = { id: 2, address: "149.154.167.50" }

export interface ClientSettings {
  readonly apiId: number
  readonly apiHash: Redacted.Redacted<string>
  readonly dcId: number
  readonly dcAddress: string
  readonly dcPort: number
  readonly connectTimeout: Duration.Duration
  readonly callTimeout: Duration.Duration
  readonly floodSleepThreshold: Duration.Duration
}

/** Where to connect: the configured DC if any, else the session's, else DC 2. */
export const clientSettings = (config: TelegramConfig, stored: StoredSession | undefined): ClientSettings => ({
  apiId: config.apiId,
  apiHash: config.apiHash,
  dcId: config.dcId._tag === "Some" ? config.dcId.value : stored?.dcId ?? defaultDc.id,
  dcAddress: config.dcAddress._tag === "Some" ? config.dcAddress.value : stored?.serverAddress ?? defaultDc.address,
  dcPort: config.dcPort,
  connectTimeout: config.connectTimeout,
  callTimeout: config.callTimeout,
  floodSleepThreshold: config.floodSleepThreshold
})

type ConnectionParams = ConstructorParameters<typeof ConnectionTCPFull>[0]

interface ConnectionHooks {
  readonly retired: () => boolean
  readonly onDropped: () => void
  /** False once this process may no longer use the key (its lease deadline passed): nothing more is sent. */
  readonly mayUse: () => boolean
}

/** TCP Full to the configured port, which reports a drop and refuses to dial once the client is retired. */
const pinnedConnection = (port: number, hooks: ConnectionHooks): typeof ConnectionTCPFull =>
  class PinnedConnection extends ConnectionTCPFull {
    constructor(params: ConnectionParams) {
      super({ ...params, port })
    }
    override async connect(): Promise<void> {
      if (hooks.retired()) throw new Error("this client is retired; the gateway reconnects with a new one")
      if (!hooks.mayUse()) throw new Error("this process does not hold the account's lease; it does not connect with its key")
      await super.connect()
    }
    /** Checked for every packet, pings included: a process that woke up after its lease ended sends nothing. */
    override async _send(data: Buffer): Promise<void> {
      if (!hooks.mayUse()) {
        await this.disconnect()
        throw new Error("the account's lease deadline passed: packet not sent, connection closed")
      }
      await super._send(data)
    }
    override async disconnect(): Promise<void> {
      const wasConnected = this.isConnected()
      await super.disconnect()
      if (wasConnected && !hooks.retired()) hooks.onDropped()
    }
  }

type EntityRow = ReturnType<StringSession["_entitiesToRows"]>[number]

/**
 * GramJS's in-memory session adds a row to its entity store for every
 * entity of every update (MemorySession.processEntities keeps a Set of new
 * arrays, so the same channel is stored again with each push): a leak for a
 * daemon. This one keeps one row per peer id, the newest. The gateway never
 * resolves peers through GramJS's session (access hashes live in PostgreSQL,
 * src/layers/PgChannelRegistry.ts), but GramJS reads these rows itself.
 */
export class OneRowPerPeerSession extends StringSession {
  private readonly rowsById = new Map<string, EntityRow>()
  override processEntities(tlo: unknown): void {
    for (const row of this._entitiesToRows(tlo)) {
      const id = String(row[0])
      const previous = this.rowsById.get(id)
      if (previous !== undefined) this._entities.delete(previous)
      this.rowsById.set(id, row)
      this._entities.add(row)
    }
  }
  /** How many rows the entity store holds (for tests). */
  get entityRows(): number {
    return this._entities.size
  }
}

/** The session's port field is a signed int16 (TELEGRAM.md); it only matters for saving. */
const sessionPortField = (port: number) => (port > 0x7fff ? port - 0x10000 : port)

/** GramJS's error as a value; the message names the method, never the request's content. */
export const toCallError = (method: string, cause: unknown): TelegramCallError | TelegramFloodWait | TelegramFatal => {
  if (cause instanceof FloodWaitError) return new TelegramFloodWait({ method, seconds: cause.seconds })
  if (cause instanceof RPCError) {
    if (isFatalReason(cause.errorMessage)) return new TelegramFatal({ reason: cause.errorMessage, method })
    return new TelegramCallError({ method, detail: `${cause.code ?? "?"} ${cause.errorMessage}` })
  }
  return new TelegramCallError({ method, detail: cause instanceof Error ? cause.message : String(cause) })
}

export type CallError = TelegramCallError | TelegramFloodWait | TelegramFatal

export interface GramJs {
  /** The raw client, for this layer's own use only. */
  readonly client: TelegramClient
  readonly connect: Effect.Effect<void, TelegramCallError | TelegramFatal>
  /** Calls a method under the call deadline, sleeping through short FLOOD_WAITs. */
  readonly invoke: <R extends Api.AnyRequest>(request: R) => Effect.Effect<R["__response"], CallError>
  /** The signed-in user; GramJS keeps it, and would otherwise ask again, without a deadline, on the first update. */
  readonly whoAmI: Effect.Effect<Api.User, CallError>
  /** Resolves when the connection drops; the client is useless afterwards. */
  readonly lost: Effect.Effect<void>
  /** The session as GramJS would save it now (after a login it holds the authorized key). */
  readonly exportSession: Effect.Effect<Redacted.Redacted<string>>
}

const shortFloodRetries = 5

/** Scoped: a client for `session` (empty for a first login), destroyed with the scope. */
export const makeGramJs = Effect.fn("GramJs.make")(function*(
  settings: ClientSettings,
  session: Redacted.Redacted<string> | undefined
) {
  const dropped = yield* Deferred.make<void>()
  let retired = false
  const stringSession = new OneRowPerPeerSession(session === undefined ? "" : Redacted.value(session))
  stringSession.setDC(settings.dcId, settings.dcAddress, sessionPortField(settings.dcPort))
  const mayUse = yield* KeyGuard
  const connection = pinnedConnection(settings.dcPort, {
    retired: () => retired,
    onDropped: () => Deferred.doneUnsafe(dropped, Effect.void),
    mayUse
  })

  const client = yield* Effect.acquireRelease(
    Effect.sync(() =>
      new TelegramClient(stringSession, settings.apiId, Redacted.value(settings.apiHash), {
        connection,
        useWSS: false,
        // Reconnection is ours (with backoff and catch-up): one attempt per connect.
        connectionRetries: 1,
        requestRetries: 2,
        // Every FLOOD_WAIT comes back to `invoke` below, to be counted and scheduled.
        floodSleepThreshold: 0,
        baseLogger: new Logger(LogLevel.NONE),
        deviceModel: "telegram-gateway",
        appVersion: "0.1.0"
      })
    ),
    (client) =>
      Effect.sync(() => {
        retired = true
      }).pipe(
        Effect.andThen(Effect.promise(() => client.destroy().catch(() => undefined))),
        Effect.timeoutOption("5 seconds"),
        Effect.asVoid
      )
  )

  const deadline = (method: string, timeout: Duration.Duration) => <A, E>(effect: Effect.Effect<A, E>) =>
    effect.pipe(
      Effect.timeoutOrElse({
        duration: timeout,
        orElse: () =>
          Effect.fail(new TelegramCallError({ method, detail: `no answer within ${Duration.format(timeout)}` }))
      })
    )

  const connect = Effect.tryPromise({
    try: () => client.connect(),
    catch: (cause) => toCallError("connect", cause)
  }).pipe(
    Effect.catchTag("TelegramFloodWait", (flood) =>
      Effect.fail(new TelegramCallError({ method: "connect", detail: flood.message }))),
    deadline("connect", settings.connectTimeout),
    Effect.flatMap((connected) =>
      connected ? Effect.void : Effect.fail(
        new TelegramCallError({
          method: "connect",
          detail: `cannot reach ${settings.dcAddress}:${settings.dcPort} (DC ${settings.dcId})`
        })
      )
    ),
    Effect.withSpan("GramJs.connect")
  )

  const floodThresholdSeconds = Duration.toSeconds(settings.floodSleepThreshold)

  const invoke = <R extends Api.AnyRequest>(request: R): Effect.Effect<R["__response"], CallError> => {
    const method = request.className
    const once = Effect.tryPromise({
      try: () => client.invoke(request),
      catch: (cause) => toCallError(method, cause)
    }).pipe(
      deadline(method, settings.callTimeout),
      Effect.tapError((error) =>
        error._tag === "TelegramFloodWait"
          ? Metric.update(Metrics.telegramFloodWaits.pipe(Metric.withAttributes({ method })), 1)
          : Effect.void
      )
    )
    // A short FLOOD_WAIT is slept on an Effect timer (interruptible, blocking nothing else) and the call retried.
    const attempt = (retriesLeft: number): Effect.Effect<R["__response"], CallError> =>
      once.pipe(
        Effect.catchTag("TelegramFloodWait", (flood) =>
          flood.seconds > floodThresholdSeconds || retriesLeft === 0
            ? Effect.fail(flood)
            : Effect.logInfo(`${flood.message}: sleeping through it`).pipe(
              Effect.andThen(Effect.sleep(Duration.seconds(flood.seconds))),
              Effect.andThen(attempt(retriesLeft - 1))
            ))
      )
    return attempt(shortFloodRetries).pipe(Effect.withSpan("GramJs.invoke", { attributes: { method } }))
  }

  const whoAmI = Effect.tryPromise({
    try: () => client.getMe(false),
    catch: (cause) => toCallError("users.GetUsers", cause)
  }).pipe(deadline("users.GetUsers", settings.callTimeout), Effect.withSpan("GramJs.whoAmI"))

  return {
    client,
    connect,
    invoke,
    whoAmI,
    lost: Deferred.await(dropped),
    exportSession: Effect.sync(() => Redacted.make(stringSession.save()))
  } satisfies GramJs
})
