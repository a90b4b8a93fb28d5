/**
 * The read side for downstream consumers: events after a cursor, messages
 * with their versions, search, counts, channel freshness, and each
 * consumer's checkpoint and processed marks. The HTTP API is its only caller;
 * PostgreSQL (src/layers/PgMessageQuery.ts) is its source of truth.
 */
import { Context, type Effect, type Option, Schema } from "effect"
import { ChannelId, type EventKind, MessageId, TelegramMessage } from "../domain/Message.ts"
import { describeCause } from "../domain/DescribeCause.ts"

export class QueryError extends Schema.TaggedError<QueryError>()("QueryError", {
  operation: Schema.String,
  cause: Schema.Defect()
}) {
  override get message(): string {
    return `PostgreSQL ${this.operation} failed: ${describeCause(this.cause)}`
  }
}

/** A search or count ran past its statement timeout (api.expensive.statementTimeout). */
export class QueryTimeout extends Schema.TaggedError<QueryTimeout>()("QueryTimeout", {
  operation: Schema.String,
  timeoutMs: Schema.Number
}) {
  override get message(): string {
    return `The ${this.operation} ran past its ${this.timeoutMs} ms statement timeout (api.expensive.statementTimeout)`
  }
}

export class UnknownChannel extends Schema.TaggedError<UnknownChannel>()("UnknownChannel", {
  channelId: Schema.Number
}) {
  override get message(): string {
    return `Channel ${this.channelId} is not known to the gateway: list channels with GET /api/v1/channels`
  }
}

export class MessageNotFound extends Schema.TaggedError<MessageNotFound>()("MessageNotFound", {
  channelId: Schema.Number,
  messageId: Schema.Number
}) {
  override get message(): string {
    return `Message ${this.messageId} of channel ${this.channelId} is not stored`
  }
}

/** A mark request would take the consumer past `limit` marks (api.maxMarksPerConsumer). */
export class MarkLimitReached extends Schema.TaggedError<MarkLimitReached>()("MarkLimitReached", {
  consumer: Schema.String,
  marks: Schema.Number,
  adding: Schema.Number,
  limit: Schema.Number
}) {
  override get message(): string {
    return `Consumer "${this.consumer}" holds ${this.marks} processed marks; ${this.adding} more would pass its limit of ` +
      `${this.limit} (api.maxMarksPerConsumer): store a checkpoint and mark only what is processed out of order`
  }
}

/**
 * A cursor (a poll's `after`, a checkpoint) beyond every event sequence value
 * drawn so far: no event can ever follow it, and a consumer would poll empty
 * until the sequence caught up.
 */
export class CursorBeyondNewest extends Schema.TaggedError<CursorBeyondNewest>()("CursorBeyondNewest", {
  seq: Schema.BigInt,
  newest: Schema.BigInt
}) {
  override get message(): string {
    return `The cursor points past the newest event (sequence ${this.seq}, newest drawn ${this.newest}): ` +
      `use the nextCursor of a page or an event's cursor`
  }
}

const Timestamp = Schema.String.annotate({ description: "ISO 8601 time, UTC" })

export class ChannelFreshness extends Schema.Class<ChannelFreshness>("ChannelFreshness")({
  channelId: ChannelId,
  username: Schema.NullOr(Schema.String),
  title: Schema.NullOr(Schema.String),
  kind: Schema.NullOr(Schema.String),
  lastMessageId: Schema.NullOr(Schema.Int),
  /** The date Telegram gave the newest stored message. */
  lastMessageAt: Schema.NullOr(Timestamp),
  /** When the gateway received it. */
  lastReceivedAt: Schema.NullOr(Timestamp),
  /** Seconds since the last receipt: how stale this channel's data may be. */
  lagSeconds: Schema.NullOr(Schema.Number)
}) {}

/**
 * A message as JSON: TelegramMessage's encoded form, which is also its type
 * (every field encodes to itself, as domain/Message.ts `encodeMessageEventJson`
 * relies on). Events carry this form so the poll can answer with
 * `JSON.stringify` instead of building and encoding a class per row.
 */
export type TelegramMessageJson = typeof TelegramMessage.Encoded

/** One event in the global order: a new message, an edit (a new version), or a deletion. */
export interface StoredEvent {
  readonly seq: bigint
  readonly kind: EventKind
  /** The stable key of domain/Message.ts `eventKey`. */
  readonly key: string
  readonly channelId: ChannelId
  readonly messageId: MessageId
  /** Null for a deletion. */
  readonly version: number | null
  /** Built from a row the store wrote after decoding it as a TelegramMessage: not decoded again. */
  readonly message: TelegramMessageJson | null
  readonly deletedAt: string | null
  readonly receivedAt: string
}

/**
 * An event as the API's poll answers it, its JSON written by PostgreSQL
 * (sql/0055_api_event_json): `members` is the text of the event's JSON object
 * after its `cursor` member, from `"kind":` to the closing brace, exactly as
 * `JSON.stringify` writes the `StoredEvent` of the same row.
 */
export interface StoredEventJson {
  readonly seq: bigint
  readonly members: string
}

/** What the bus relay needs of an event to tell whether it still has to publish it. */
export interface StoredEventKey {
  readonly seq: bigint
  /** The stable key of domain/Message.ts `eventKey`. */
  readonly key: string
  readonly receivedAt: string
}

export class MessageVersion extends Schema.Class<MessageVersion>("MessageVersion")({
  version: Schema.Int,
  message: TelegramMessage,
  receivedAt: Timestamp
}) {}

export class MessageHistory extends Schema.Class<MessageHistory>("MessageHistory")({
  channelId: ChannelId,
  messageId: MessageId,
  deletedAt: Schema.NullOr(Timestamp),
  /** Oldest first; the last one is the current text. */
  versions: Schema.Array(MessageVersion)
}) {}

export class SearchHit extends Schema.Class<SearchHit>("SearchHit")({
  channelId: ChannelId,
  messageId: MessageId,
  version: Schema.Int,
  date: Schema.Int.annotate({ description: "Unix seconds" }),
  text: Schema.String,
  rank: Schema.Number
}) {}

export const CountBucketSize = Schema.Literals(["minute", "hour", "day"])
export type CountBucketSize = typeof CountBucketSize.Type

export class CountBucket extends Schema.Class<CountBucket>("CountBucket")({
  start: Timestamp,
  /** Originals dated in the window. */
  messages: Schema.Int,
  /** Edits whose edit date falls in the window. */
  edits: Schema.Int,
  /** Deletions the gateway learnt of in the window. */
  deletions: Schema.Int
}) {}

export class Checkpoint extends Schema.Class<Checkpoint>("Checkpoint")({
  consumer: Schema.String,
  seq: Schema.BigInt,
  updatedAt: Timestamp
}) {}

export interface MarkSummary {
  /** Keys marked by this call. */
  readonly marked: number
  /** Keys this consumer had marked before. */
  readonly alreadyMarked: number
  /** Keys that name no stored event: not stored. */
  readonly unknown: ReadonlyArray<string>
}

export interface ConsumerSummary {
  readonly consumer: string
  readonly checkpoint: Checkpoint | null
  readonly processed: number
}

export class MessageQuery extends Context.Service<MessageQuery, {
  readonly channels: Effect.Effect<ReadonlyArray<ChannelFreshness>, QueryError>
  /** Whether the gateway knows the channel (configured or with stored messages). */
  readonly channelExists: (channelId: ChannelId) => Effect.Effect<boolean, QueryError>
  /**
   * Up to `limit` events with a sequence above `after`, in sequence order,
   * never past an event that a transaction still in flight could precede.
   */
  readonly events: (options: {
    readonly after: bigint
    readonly channelId: ChannelId | undefined
    readonly limit: number
  }) => Effect.Effect<ReadonlyArray<StoredEvent>, QueryError>
  /**
   * `events` as the API's poll writes them: the same events in the same
   * order, cut at the same point, each as its JSON text.
   */
  readonly eventsJson: (options: {
    readonly after: bigint
    readonly channelId: ChannelId | undefined
    readonly limit: number
  }) => Effect.Effect<ReadonlyArray<StoredEventJson>, QueryError>
  /**
   * `events` without the messages, over every channel: the same events in the
   * same order, cut at the same point. The bus relay reads this first and
   * the messages only when one of them still needs publishing, so the events
   * the hot path published are not read back whole.
   */
  readonly eventKeys: (options: {
    readonly after: bigint
    readonly limit: number
  }) => Effect.Effect<ReadonlyArray<StoredEventKey>, QueryError>
  /** The highest event sequence committed so far (0 when none): where a watcher of new commits starts. */
  readonly newestSeq: Effect.Effect<bigint, QueryError>
  /**
   * The last value `event_seq` drew (0 before the first), committed or not:
   * every cursor the API hands out is at or below it, since it never goes
   * back, and every event still to commit is above any cursor beyond it.
   */
  readonly newestDrawnSeq: Effect.Effect<bigint, QueryError>
  readonly history: (channelId: ChannelId, messageId: MessageId) => Effect.Effect<MessageHistory, QueryError | MessageNotFound>
  /**
   * The current version of the `limit` newest live (not deleted) messages of
   * a channel, newest first: the same window the Redis recent index keeps.
   */
  readonly recent: (channelId: ChannelId, limit: number) => Effect.Effect<ReadonlyArray<TelegramMessage>, QueryError>
  /**
   * Full text over the current version of live messages ('simple'
   * configuration: any language), under the statement timeout.
   */
  readonly search: (options: {
    readonly query: string
    readonly channelId: ChannelId | undefined
    readonly limit: number
  }) => Effect.Effect<ReadonlyArray<SearchHit>, QueryError | QueryTimeout>
  readonly counts: (options: {
    readonly channelId: ChannelId | undefined
    readonly from: Date
    readonly to: Date
    readonly bucket: CountBucketSize
  }) => Effect.Effect<ReadonlyArray<CountBucket>, QueryError | QueryTimeout>
  /**
   * Idempotent: marking a key twice counts it as already marked. Only keys
   * of stored events are stored (the others come back as `unknown`), and the
   * consumer never holds more than `limit` marks.
   */
  readonly markProcessed: (
    consumer: string,
    keys: ReadonlyArray<string>,
    limit: number
  ) => Effect.Effect<MarkSummary, QueryError | MarkLimitReached>
  readonly checkpoint: (consumer: string) => Effect.Effect<Option.Option<Checkpoint>, QueryError>
  /** Refuses a sequence above every value `event_seq` has drawn. */
  readonly setCheckpoint: (consumer: string, seq: bigint) => Effect.Effect<Checkpoint, QueryError | CursorBeyondNewest>
  readonly consumers: Effect.Effect<ReadonlyArray<ConsumerSummary>, QueryError>
  readonly ping: Effect.Effect<void, QueryError>
}>()("telegram-gateway/MessageQuery") {}
