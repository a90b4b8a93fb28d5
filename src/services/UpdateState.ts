/**
 * The Telegram update engine's durable state: per channel the pts (and newest
 * message id) up to which everything is committed, the account's common
 * sequence (pts, qts, date, seq), and FLOOD_WAITs still running. The engine
 * (src/layers/GramJsTelegramSource.ts) loads it at start and saves what
 * ingestion has committed; the implementation is
 * src/layers/PgUpdateStateStore.ts (sql/0013_update_state.up.sql).
 *
 * Fencing: every save carries the current owner epoch (`OwnerEpoch`), and the
 * store refuses a save whose epoch is lower than the stored one
 * (`UpdateStateFenced`): an instance that lost its lease cannot move the state.
 */
import { Context, Effect, Schema } from "effect"
import { describeCause } from "../domain/DescribeCause.ts"

export interface ChannelUpdateState {
  readonly channelId: number
  readonly pts: number
  /** Newest message id committed; 0 when none. */
  readonly topMessageId: number
}

export interface AccountUpdateState {
  readonly pts: number
  readonly qts: number
  readonly date: number
  readonly seq: number
}

/** A FLOOD_WAIT on `method` for `chatId` (0: not about one chat) that lasts until `until` (epoch ms). */
export interface FloodWaitRecord {
  readonly method: string
  readonly chatId: number
  readonly until: number
}

/** What PostgreSQL holds of one message: its newest edit date and whether it is deleted. */
export interface StoredMessage {
  readonly messageId: number
  /** Unix seconds of the newest stored version's edit, null when never edited. */
  readonly editDate: number | null
  readonly deleted: boolean
}

export interface LoadedUpdateState {
  readonly channels: ReadonlyArray<ChannelUpdateState>
  readonly account: AccountUpdateState | undefined
  readonly floodWaits: ReadonlyArray<FloodWaitRecord>
}

export class UpdateStateError extends Schema.TaggedError<UpdateStateError>()("UpdateStateError", {
  operation: Schema.String,
  cause: Schema.Defect()
}) {
  override get message(): string {
    return `Update state ${this.operation} failed: ${describeCause(this.cause)}`
  }
}

/** Another instance with a higher epoch owns the state: this one must stop writing. */
export class UpdateStateFenced extends Schema.TaggedError<UpdateStateFenced>()("UpdateStateFenced", {
  epoch: Schema.BigInt,
  detail: Schema.String
}) {
  override get message(): string {
    return `Update state write with epoch ${this.epoch} refused: ${this.detail}`
  }
}

/**
 * The epoch this instance writes update state with. A plain single instance
 * uses 0; a high-availability setup provides the lease's fencing token (read
 * on every save, so a renewed lease takes effect at once).
 */
export const OwnerEpoch = Context.Reference<Effect.Effect<bigint>>("telegram-gateway/OwnerEpoch", {
  defaultValue: () => Effect.succeed(0n)
})

export class UpdateStateStore extends Context.Service<UpdateStateStore, {
  readonly load: Effect.Effect<LoadedUpdateState, UpdateStateError>
  /** Saves channel and account state (each moves forward only), with the current owner epoch. */
  readonly save: (state: {
    readonly channels: ReadonlyArray<ChannelUpdateState>
    readonly account: AccountUpdateState | undefined
  }) => Effect.Effect<void, UpdateStateError | UpdateStateFenced>
  readonly saveFloodWait: (wait: FloodWaitRecord) => Effect.Effect<void, UpdateStateError>
  /** What is stored of `channelId`'s messages with ids in [fromId, toId], for the too-long re-read window. */
  readonly storedMessages: (
    channelId: number,
    fromId: number,
    toId: number
  ) => Effect.Effect<ReadonlyArray<StoredMessage>, UpdateStateError>
  /**
   * Which of the chats `chatIds` holds each stored message of `messageIds`:
   * a basic group's deletion names message ids only (they are unique per
   * account), so its chat is found among what was stored.
   */
  readonly chatsOfMessages: (
    chatIds: ReadonlyArray<number>,
    messageIds: ReadonlyArray<number>
  ) => Effect.Effect<ReadonlyArray<{ readonly chatId: number; readonly messageId: number }>, UpdateStateError>
}>()("telegram-gateway/UpdateStateStore") {}
