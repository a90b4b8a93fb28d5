/**
 * The durable record, in PostgreSQL (TimescaleDB where available) through
 * PgBouncer. Writes are batched and idempotent on the stable key.
 */
import { Context, type Array, type Duration, type Effect, Schema } from "effect"
import type { ChannelId, MessageEvent, MessageId, TelegramMessage } from "../domain/Message.ts"
import { describeCause } from "../domain/DescribeCause.ts"

export class StoreError extends Schema.TaggedError<StoreError>()("StoreError", {
  operation: Schema.String,
  /** A lost connection or a timeout is worth retrying; a rejected row is not. */
  retryable: Schema.Boolean,
  cause: Schema.Defect()
}) {
  override get message(): string {
    return `PostgreSQL ${this.operation} failed: ${describeCause(this.cause)}`
  }
}

export interface WriteSummary {
  /** Message versions and deletions newly recorded. */
  readonly inserted: number
  /** Already recorded: their stable key was in the table. */
  readonly duplicates: number
}

export interface StoredVersion {
  readonly version: number
  readonly message: TelegramMessage
  readonly deletedAt: Date | null
}

export class MessageStore extends Context.Service<MessageStore, {
  /** One statement per kind of event, many rows each; a conflict on the stable key inserts nothing. */
  readonly writeBatch: (events: Array.NonEmptyReadonlyArray<MessageEvent>) => Effect.Effect<WriteSummary, StoreError>
  /** Every stored version of a message, oldest first. */
  readonly versions: (channelId: ChannelId, messageId: MessageId) => Effect.Effect<ReadonlyArray<StoredVersion>, StoreError>
  /** Channels with an event received within `maxAge`. */
  readonly activeChannels: (maxAge: Duration.Duration) => Effect.Effect<ReadonlyArray<ChannelId>, StoreError>
  /**
   * A channel's events received within `maxAge`, the newest `limit` message
   * versions and deletions, oldest first: what the hot cache should hold, to
   * refill it after Redis lost its data.
   */
  readonly recentEvents: (options: {
    readonly channelId: ChannelId
    readonly maxAge: Duration.Duration
    readonly limit: number
  }) => Effect.Effect<ReadonlyArray<MessageEvent>, StoreError>
  readonly ping: Effect.Effect<void, StoreError>
}>()("telegram-gateway/MessageStore") {}
