/**
 * A Telegram message as the gateway keeps it, and the events that carry it.
 *
 * Ids are JavaScript numbers: Telegram's channel, chat and user ids are int64
 * on the wire but stay below 2^53 in practice, and message ids are int32.
 * `groupedId` (albums) uses the full int64 range, so it travels as a string.
 */
import { Schema } from "effect"

export const ChannelId = Schema.Int.pipe(Schema.check(Schema.isGreaterThan(0)), Schema.brand("ChannelId"))
export type ChannelId = typeof ChannelId.Type

export const MessageId = Schema.Int.pipe(Schema.check(Schema.isGreaterThan(0)), Schema.brand("MessageId"))
export type MessageId = typeof MessageId.Type

/** Unix time in seconds, Telegram's resolution for message and edit dates. */
export const UnixSeconds = Schema.Int.pipe(Schema.check(Schema.isGreaterThanOrEqualTo(0)))

export const SenderKind = Schema.Literals(["user", "bot", "channel", "chat", "anonymous"])
export type SenderKind = typeof SenderKind.Type

export class Sender extends Schema.Class<Sender>("Sender")({
  id: Schema.NullOr(Schema.Int),
  kind: SenderKind,
  name: Schema.NullOr(Schema.String)
}) {}

/** A formatting or link span over the text, in UTF-16 code units as Telegram counts them. */
export class Entity extends Schema.Class<Entity>("Entity")({
  type: Schema.String,
  offset: Schema.Int,
  length: Schema.Int,
  url: Schema.optionalKey(Schema.String),
  userId: Schema.optionalKey(Schema.Int),
  language: Schema.optionalKey(Schema.String),
  customEmojiId: Schema.optionalKey(Schema.String)
}) {}

export const MediaKind = Schema.Literals([
  "photo",
  "video",
  "audio",
  "voice",
  "document",
  "sticker",
  "animation",
  "webpage",
  "poll",
  "geo",
  "contact",
  "other"
])
export type MediaKind = typeof MediaKind.Type

/** What we know of attached media; the file itself is never downloaded. */
export class Media extends Schema.Class<Media>("Media")({
  kind: MediaKind,
  mimeType: Schema.NullOr(Schema.String),
  size: Schema.NullOr(Schema.Int),
  fileName: Schema.NullOr(Schema.String),
  width: Schema.NullOr(Schema.Int),
  height: Schema.NullOr(Schema.Int),
  durationSeconds: Schema.NullOr(Schema.Finite)
}) {}

export class TelegramMessage extends Schema.Class<TelegramMessage>("TelegramMessage")({
  channelId: ChannelId,
  messageId: MessageId,
  date: UnixSeconds,
  editDate: Schema.NullOr(UnixSeconds),
  sender: Schema.NullOr(Sender),
  text: Schema.String,
  entities: Schema.Array(Entity),
  media: Schema.NullOr(Media),
  replyToMessageId: Schema.NullOr(Schema.Int),
  groupedId: Schema.NullOr(Schema.String),
  views: Schema.NullOr(Schema.Int),
  forwards: Schema.NullOr(Schema.Int),
  /** The TL object as JSON, for what the fields above do not model. */
  raw: Schema.Unknown
}) {}

/**
 * Which version of a message an event carries. The original is version 0; an
 * edit is versioned by its `edit_date`, which Telegram repeats identically when
 * it redelivers the edit, so a replay yields the same key and deduplicates.
 */
export const messageVersion = (message: TelegramMessage): number => message.editDate ?? 0

const ReceivedAt = Schema.Int.annotate({ description: "Receipt time, epoch milliseconds" })

export class MessageCreated extends Schema.TaggedClass<MessageCreated>()("MessageCreated", {
  message: TelegramMessage,
  receivedAt: ReceivedAt
}) {}

export class MessageEdited extends Schema.TaggedClass<MessageEdited>()("MessageEdited", {
  message: TelegramMessage,
  receivedAt: ReceivedAt
}) {}

/** Telegram does not date deletions: `deletedAt` is when the gateway learnt of it (epoch ms). */
export class MessageDeleted extends Schema.TaggedClass<MessageDeleted>()("MessageDeleted", {
  channelId: ChannelId,
  messageId: MessageId,
  deletedAt: Schema.Int,
  receivedAt: ReceivedAt
}) {}

export const MessageEvent = Schema.Union([MessageCreated, MessageEdited, MessageDeleted])
export type MessageEvent = typeof MessageEvent.Type

export type EventKind = "new" | "edited" | "deleted"

export const eventKind = (event: MessageEvent): EventKind => {
  switch (event._tag) {
    case "MessageCreated":
      return "new"
    case "MessageEdited":
      return "edited"
    case "MessageDeleted":
      return "deleted"
  }
}

export const eventChannelId = (event: MessageEvent): ChannelId =>
  event._tag === "MessageDeleted" ? event.channelId : event.message.channelId

export const eventMessageId = (event: MessageEvent): MessageId =>
  event._tag === "MessageDeleted" ? event.messageId : event.message.messageId

/**
 * The stable key every tier uses for one event: `channel:message:version` for
 * a message version, `channel:message:deleted` for its deletion. It is the
 * dedup key in Redis, the AMQP `message_id`, and the primary key in PostgreSQL.
 */
export const eventKey = (event: MessageEvent): string =>
  event._tag === "MessageDeleted"
    ? `${event.channelId}:${event.messageId}:deleted`
    : `${event.message.channelId}:${event.message.messageId}:${messageVersion(event.message)}`

/** Decodes untrusted input (a payload from a source, a file, a queue) into an event. */
export const decodeMessageEvent = Schema.decodeUnknownEffect(MessageEvent)

/** Events as JSON, the wire format of the cache and the bus. */
export const MessageEventJson = Schema.fromJsonString(MessageEvent)
export const decodeMessageEventJson = Schema.decodeUnknownEffect(MessageEventJson)

/**
 * Every field of an event encodes to itself (no dates, no bigints, no
 * transformations), so plain `JSON.stringify` yields exactly what the schema
 * encoder does, about fifty times faster: this runs twice per event on the
 * hot path (memoized, so the cache and the bus share one encoding).
 * test/domain/Message.test.ts holds the two to the same output.
 */
const encodedEvents = new WeakMap<MessageEvent, string>()

export const encodeMessageEventJson = (event: MessageEvent): string => {
  let json = encodedEvents.get(event)
  if (json === undefined) {
    json = JSON.stringify(event)
    encodedEvents.set(event, json)
  }
  return json
}

