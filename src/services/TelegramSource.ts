/**
 * The Telegram source: every new message, edit and deletion of the configured
 * chats, as domain events. The MTProto client behind it (GramJS in
 * src/layers/GramJsTelegramSource.ts) never shows through: callers see Effect
 * types and the typed errors below, so another library could replace it.
 */
import { Context, type Effect, Runtime, Schema, type Stream } from "effect"
import type { SourceBatch } from "../domain/SourceBatch.ts"

/** Errors after which Telegram will not serve the session again: retrying cannot help. */
export const FatalReason = Schema.Literals([
  "AUTH_KEY_UNREGISTERED",
  "SESSION_REVOKED",
  "USER_DEACTIVATED",
  "AUTH_KEY_DUPLICATED"
])
export type FatalReason = typeof FatalReason.Type

/**
 * One exit code per fatal reason (README, "Exit codes"); the systemd unit
 * lists them in `RestartPreventExitStatus=` so it stops restarting.
 */
export const fatalExitCodes: Record<FatalReason, number> = {
  AUTH_KEY_UNREGISTERED: 80,
  SESSION_REVOKED: 81,
  USER_DEACTIVATED: 82,
  AUTH_KEY_DUPLICATED: 83
}

const fatalAdvice: Record<FatalReason, string> = {
  AUTH_KEY_UNREGISTERED:
    "Telegram no longer knows this session (logged out or expired). Run 'telegram-gateway login' to create a new session, then start the gateway again.",
  SESSION_REVOKED:
    "the session was terminated (from another device or by Telegram). Run 'telegram-gateway login' to create a new session, then start the gateway again.",
  USER_DEACTIVATED:
    "the Telegram account is deleted or banned. Restarting will not help: use another account and run 'telegram-gateway login'.",
  AUTH_KEY_DUPLICATED:
    "the session was used from two connections at once, and Telegram has revoked it: it will not work again, on any host. Find what else used this session file (a copy on another host, a second unit, a laptop) and stop it; run 'telegram-gateway login' (with --account for a named account) to create a new session, copy the new file to every host that may own this account, and start the gateways again (docs/operations.md, \"Running two or more hosts\"). Gateways sharing the PostgreSQL database never connect at once: see that every copy uses the same database."
}

export const isFatalReason = (value: string): value is FatalReason => Object.hasOwn(fatalExitCodes, value)

/** The session is dead: the process exits with the reason's code, and must not loop. */
export class TelegramFatal extends Schema.TaggedError<TelegramFatal>()("TelegramFatal", {
  reason: FatalReason,
  method: Schema.String
}) {
  override readonly [Runtime.errorExitCode] = fatalExitCodes[this.reason]
  override get message(): string {
    return `Telegram refused the session with ${this.reason} (on ${this.method}): ${fatalAdvice[this.reason]}`
  }
}

export const SessionFileProblem = Schema.Literals(["missing", "unreadable", "corrupt", "unwritable"])
export type SessionFileProblem = typeof SessionFileProblem.Type

/** sysexits codes: EX_NOINPUT, EX_NOPERM, EX_DATAERR, EX_CANTCREAT. */
export const sessionFileExitCodes: Record<SessionFileProblem, number> = {
  missing: 66,
  unreadable: 77,
  corrupt: 65,
  unwritable: 73
}

/** The session file cannot be used. `detail` never holds the session itself. */
export class SessionFileError extends Schema.TaggedError<SessionFileError>()("SessionFileError", {
  path: Schema.String,
  problem: SessionFileProblem,
  detail: Schema.String
}) {
  override readonly [Runtime.errorExitCode] = sessionFileExitCodes[this.problem]
  override get message(): string {
    switch (this.problem) {
      case "missing":
        return `session file not found at ${this.path}: first-time setup required, run 'telegram-gateway login'`
      case "unreadable":
        return `session file at ${this.path} cannot be read (${this.detail}): check that it belongs to the gateway's user with mode 0600`
      case "corrupt":
        return `session file at ${this.path} is corrupt (${this.detail}): run 'telegram-gateway login' to create a new one`
      case "unwritable":
        return `session file at ${this.path} cannot be written (${this.detail}): check the directory's owner and permissions`
    }
  }
}

/** A call to Telegram failed in a way that a later attempt may not (timeout, network, RPC error). */
export class TelegramCallError extends Schema.TaggedError<TelegramCallError>()("TelegramCallError", {
  method: Schema.String,
  detail: Schema.String
}) {
  override get message(): string {
    return `Telegram call ${this.method} failed: ${this.detail}`
  }
}

/** Telegram asked to wait longer than the gateway sleeps through (`telegram.floodSleepThreshold`). */
export class TelegramFloodWait extends Schema.TaggedError<TelegramFloodWait>()("TelegramFloodWait", {
  method: Schema.String,
  seconds: Schema.Int
}) {
  override get message(): string {
    return `Telegram rate-limited ${this.method}: FLOOD_WAIT of ${this.seconds} s`
  }
}

export type ConnectionState = "connecting" | "connected" | "disconnected" | "failed"

/** A recovery of missed updates under way, with how far it got. */
export interface ChannelRecovery {
  /** `difference`: a chain of getChannelDifference pages; `too_long`: the gap is paged in from history. */
  readonly kind: "difference" | "too_long"
  readonly runningSeconds: number
  /** Events fetched so far. */
  readonly events: number
  /** too_long: message ids (fromId, toId] are read, up to atId so far; null for a difference. */
  readonly fromId: number | null
  readonly toId: number | null
  readonly atId: number | null
  /** too_long: share of the ids read (0 to 1); null for a difference, whose end is not known in advance. */
  readonly progress: number | null
}

/**
 * `starting`: not yet confirmed up to date since this process started;
 * `live`: confirmed within `telegram.staleAfter`; `recovering`: fetching what
 * it missed (a difference chain or a too-long gap), so it is behind but
 * moving; `stale`: not confirmed for longer than `telegram.staleAfter` and
 * not recovering; `refused`: Telegram refuses it.
 */
export type ChannelState = "starting" | "live" | "recovering" | "stale" | "refused"

/** How one configured channel stands, for /health/ready. */
export interface ChannelStatus {
  /** As configured, or @username once resolved. */
  readonly channel: string
  readonly channelId: number | null
  /** The pts up to which everything is committed. */
  readonly pts: number | null
  /** Seconds since the engine last confirmed it up to date with Telegram. */
  readonly freshnessSeconds: number
  /** Not confirmed for longer than `telegram.staleAfter` (recovering or not). */
  readonly stale: boolean
  readonly state: ChannelState
  readonly recovery: ChannelRecovery | null
  /** Telegram's refusal (CHANNEL_PRIVATE, ...) when the channel is dropped. */
  readonly refused: string | null
}

export class TelegramSource extends Context.Service<TelegramSource, {
  /**
   * New, edited and deleted messages of the configured chats, in each
   * chat's update order, each with `receivedAt` set at receipt, in batches
   * whose `onCommitted` moves the source's update state: it must run only
   * once the batch's events are committed (src/domain/SourceBatch.ts). After
   * a crash, what was received but not committed comes again, so an event may
   * come more than once: every tier dedupes on `eventKey`. Ends only with a
   * fatal session error. One consumer: the events are not copied.
   */
  readonly events: Stream.Stream<SourceBatch, TelegramFatal>
  readonly connectionState: Effect.Effect<ConnectionState>
  /** Every configured channel's state and freshness. */
  readonly channels: Effect.Effect<ReadonlyArray<ChannelStatus>>
}>()("telegram-gateway/TelegramSource") {}
