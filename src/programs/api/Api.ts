/**
 * The consumer API, schema first: the server (Server.ts), the OpenAPI
 * document (/openapi.json), the docs page and the typed client
 * (`HttpApiClient.make(GatewayApi)`) all come from these definitions.
 */
import { Schema } from "effect"
import { HttpApi, HttpApiEndpoint, HttpApiGroup, OpenApi } from "effect/http-api"
import { ChannelId, MessageId, TelegramMessage } from "../../domain/Message.ts"
import {
  ChannelFreshness,
  CountBucket,
  CountBucketSize,
  MessageHistory,
  SearchHit
} from "../../services/MessageQuery.ts"
import {
  Conflict,
  InvalidRequest,
  NotFound,
  PayloadTooLarge,
  UnavailableWithRetryAfter,
  UnsupportedMediaType
} from "./Errors.ts"
import { AckAccess, AdminAccess, ReadAccess, Validation } from "./Security.ts"

const Limit = Schema.Int.check(Schema.isGreaterThanOrEqualTo(1)).annotate({
  description: "Items per page, 1 to api.maxLimit (1000 by default); api.defaultLimit when absent"
})
const Cursor = Schema.String.annotate({ description: "An opaque cursor from nextCursor or an event's cursor" })
const Timestamp = Schema.String.annotate({ description: "ISO 8601 time, UTC" })
export const ConsumerName = Schema.String.check(Schema.isPattern(/^[A-Za-z0-9_.-]{1,64}$/)).annotate({
  description: "1 to 64 of A-Z a-z 0-9 _ . -"
})
export const EventKey = Schema.String.check(Schema.isPattern(/^[0-9]{1,19}:[0-9]{1,10}:([0-9]{1,10}|deleted)$/)).annotate({
  description: "An event's stable key: channel:message:version or channel:message:deleted"
})

export class Event extends Schema.Class<Event>("Event")({
  cursor: Cursor,
  kind: Schema.Literals(["new", "edited", "deleted"]),
  key: EventKey,
  channelId: ChannelId,
  messageId: MessageId,
  version: Schema.NullOr(Schema.Int),
  message: Schema.NullOr(TelegramMessage),
  deletedAt: Schema.NullOr(Timestamp),
  receivedAt: Timestamp
}) {}

export class EventPage extends Schema.Class<EventPage>("EventPage")({
  events: Schema.Array(Event),
  /** Pass it back as `after`; equal to `after` when nothing new was ready. */
  nextCursor: Cursor
}) {}

export class CheckpointView extends Schema.Class<CheckpointView>("CheckpointView")({
  consumer: ConsumerName,
  /** Null until the consumer sets one: start from the beginning. */
  cursor: Schema.NullOr(Cursor),
  updatedAt: Schema.NullOr(Timestamp)
}) {}

export class MarkResult extends Schema.Class<MarkResult>("MarkResult")({
  marked: Schema.Int,
  alreadyMarked: Schema.Int,
  /** Keys that name no stored event: not stored. */
  unknown: Schema.Array(EventKey)
}) {}

export class ConsumerView extends Schema.Class<ConsumerView>("ConsumerView")({
  consumer: ConsumerName,
  cursor: Schema.NullOr(Cursor),
  updatedAt: Schema.NullOr(Timestamp),
  processed: Schema.Int
}) {}

const channelParams = { channelId: ChannelId }
const requestErrors = [InvalidRequest, UnavailableWithRetryAfter] as const

export class ReadApi extends HttpApiGroup.make("read")
  .add(
    HttpApiEndpoint.get("channels", "/channels", {
      success: Schema.Struct({ channels: Schema.Array(ChannelFreshness) }),
      error: requestErrors
    }).annotate(OpenApi.Description, "Each configured channel with its newest message and how stale it is"),
    HttpApiEndpoint.get("events", "/messages", {
      query: {
        after: Schema.optional(Cursor),
        channelId: Schema.optional(ChannelId),
        limit: Schema.optional(Limit),
        wait: Schema.optional(Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)).annotate({
          description: "Long poll: seconds to wait for an event when none is ready, up to api.longPollMaxWait"
        }))
      },
      success: EventPage,
      error: [...requestErrors, NotFound]
    }).annotate(
      OpenApi.Description,
      "Events (new messages, edits as new versions, deletions) after a cursor, in one stable order"
    ),
    HttpApiEndpoint.get("message", "/channels/:channelId/messages/:messageId", {
      params: { channelId: ChannelId, messageId: MessageId },
      success: MessageHistory,
      error: [...requestErrors, NotFound]
    }).annotate(OpenApi.Description, "One message with every stored version, oldest first"),
    HttpApiEndpoint.get("recent", "/channels/:channelId/recent", {
      params: channelParams,
      query: { limit: Schema.optional(Limit) },
      success: Schema.Struct({ messages: Schema.Array(TelegramMessage) }),
      error: [...requestErrors, NotFound]
    }).annotate(OpenApi.Description, "The newest live messages of a channel in their current version, newest first"),
    HttpApiEndpoint.get("search", "/search", {
      query: {
        q: Schema.String.check(
          Schema.isMinLength(1),
          Schema.isMaxLength(256),
          Schema.isPattern(/^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\uD800-\uDFFF]*$/u, {
            message: "q must be text: no NUL, control characters or lone surrogates"
          })
        ).annotate({
          description: "Words, \"a phrase\", or -excluded, in any language; 1 to 256 characters of text"
        }),
        channelId: Schema.optional(ChannelId),
        limit: Schema.optional(Limit)
      },
      success: Schema.Struct({ hits: Schema.Array(SearchHit) }),
      error: [...requestErrors, NotFound]
    }).annotate(
      OpenApi.Description,
      "Full-text search over the current text of live messages; per key and overall concurrency limits " +
        "(429 or 503 with Retry-After) and a statement timeout (503 query_timeout)"
    ),
    HttpApiEndpoint.get("counts", "/counts", {
      query: {
        from: Timestamp,
        to: Timestamp,
        bucket: Schema.optional(CountBucketSize),
        channelId: Schema.optional(ChannelId)
      },
      success: Schema.Struct({ buckets: Schema.Array(CountBucket) }),
      error: [...requestErrors, NotFound]
    }).annotate(OpenApi.Description, "Messages, edits and deletions per time window (UTC), at most 1000 windows")
  )
  .middleware(ReadAccess)
  .prefix("/api/v1")
{}

const consumerParams = { consumer: ConsumerName }
const bodyErrors = [...requestErrors, PayloadTooLarge, UnsupportedMediaType] as const

export class AckApi extends HttpApiGroup.make("ack")
  .add(
    HttpApiEndpoint.post("markProcessed", "/consumers/:consumer/processed", {
      params: consumerParams,
      payload: Schema.Struct({ keys: Schema.Array(EventKey).check(Schema.isMinLength(1), Schema.isMaxLength(1000)) }),
      success: MarkResult,
      error: [...bodyErrors, Conflict]
    }).annotate(
      OpenApi.Description,
      "Marks stored events processed by this consumer (keys of no stored event come back in unknown, unstored); " +
        "marking again is harmless; at most api.maxMarksPerConsumer marks per consumer (409 past it)"
    ),
    HttpApiEndpoint.get("checkpoint", "/consumers/:consumer/checkpoint", {
      params: consumerParams,
      success: CheckpointView,
      error: requestErrors
    }),
    HttpApiEndpoint.put("setCheckpoint", "/consumers/:consumer/checkpoint", {
      params: consumerParams,
      payload: Schema.Struct({ cursor: Cursor }),
      success: CheckpointView,
      error: bodyErrors
    }).annotate(
      OpenApi.Description,
      "Stores the cursor this consumer has consumed up to; an empty cursor or one past the newest event is a 400"
    )
  )
  .middleware(AckAccess)
  .prefix("/api/v1")
{}

export class AdminApi extends HttpApiGroup.make("admin")
  .add(
    HttpApiEndpoint.get("consumers", "/consumers", {
      success: Schema.Struct({ consumers: Schema.Array(ConsumerView) }),
      error: requestErrors
    }).annotate(OpenApi.Description, "Every consumer's checkpoint and number of processed marks")
  )
  .middleware(AdminAccess)
  .prefix("/api/v1")
{}

export class GatewayApi extends HttpApi.make("telegram-gateway")
  .add(ReadApi)
  .add(AckApi)
  .add(AdminApi)
  .middleware(Validation)
  .annotateMerge(OpenApi.annotations({
    title: "Telegram gateway API",
    version: "1",
    description: "Messages, edits and deletions captured by the gateway, for downstream consumers. " +
      "Every request needs an X-API-Key header; errors are JSON { status, code, message }."
  }))
{}
