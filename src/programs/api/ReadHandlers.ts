/** Handlers of the read group: channels, events, messages, recent, search, counts. */
import { Duration, Effect, Metric } from "effect"
import { HttpServerResponse } from "effect/http"
import { HttpApiBuilder } from "effect/http-api"
import type { ChannelId } from "../../domain/Message.ts"
import { ApiConfig } from "../../services/ApiConfig.ts"
import { requestsRefused } from "../../services/ApiMetrics.ts"
import { MessageQuery, type QueryTimeout, type StoredEventJson } from "../../services/MessageQuery.ts"
import { GatewayApi } from "./Api.ts"
import { decodeCursor, encodeCursor } from "./Cursor.ts"
import { InvalidRequest, NotFound, Unavailable } from "./Errors.ts"
import { CommitWatch } from "./CommitWatch.ts"
import { Limits } from "./Limits.ts"
import { recentMessages } from "./RecentMessages.ts"
import { orUnavailable, pageSize, requireChannel, requireCursorInRange } from "./Requests.ts"
import { Caller } from "./Security.ts"

const maxCountBuckets = 1000
const bucketMillis = { minute: 60_000, hour: 3_600_000, day: 86_400_000 } as const

/**
 * The page as the JSON that encoding an `EventPage` would give, written
 * around each event's JSON as PostgreSQL built it (`MessageQuery.eventsJson`,
 * sql/0055_api_event_json): no row objects, no event objects, no
 * `JSON.stringify` of the page, since polling is the hot path. A cursor is
 * base64url text and needs no escaping. The endpoint still declares
 * `EventPage` as its success, so the OpenAPI document and the typed client
 * are unchanged; HttpApi passes a returned HttpServerResponse through.
 * test/api/Api.test.ts holds the body to the schema's encoding, byte for
 * byte.
 */
const eventPageResponse = (events: ReadonlyArray<StoredEventJson>, nextCursor: string) => {
  let body = "{\"events\":["
  for (let index = 0; index < events.length; index++) {
    const event = events[index]!
    body += `${index === 0 ? "" : ","}{"cursor":"${encodeCursor(event.seq)}",${event.members}`
  }
  return HttpServerResponse.text(`${body}],"nextCursor":"${nextCursor}"}`, { contentType: "application/json" })
}

const parseTime = (value: string, parameter: string) => {
  const date = new Date(value)
  return Number.isNaN(date.getTime()) || !/^\d{4}-\d{2}-\d{2}/.test(value)
    ? Effect.fail(new InvalidRequest({ code: "invalid_parameter", message: `${parameter} must be an ISO 8601 time such as 2024-05-01T00:00:00Z; got "${value}"` }))
    : Effect.succeed(date)
}

export const layer = HttpApiBuilder.group(
  GatewayApi,
  "read",
  Effect.fn(function*(handlers) {
    const query = yield* MessageQuery
    const config = yield* ApiConfig
    const maxWaitSeconds = Duration.toSeconds(config.longPollMaxWait)
    const limits = yield* Limits
    const watch = yield* CommitWatch

    /** A search or count within the caller's concurrency limits; past its statement timeout a 503. */
    const expensive = <A, E, R>(effect: Effect.Effect<A, E | QueryTimeout, R>) =>
      Effect.gen(function*() {
        const caller = yield* Caller
        return yield* limits.expensive(caller.name, effect).pipe(
          Effect.catchIf((error): error is QueryTimeout => (error as { _tag?: unknown })._tag === "QueryTimeout", (error) =>
            Effect.logWarning("Query timed out").pipe(
              Effect.annotateLogs({ operation: error.operation, timeoutMs: error.timeoutMs }),
              Effect.andThen(Metric.update(requestsRefused.pipe(Metric.withAttributes({ reason: "query_timeout" })), 1)),
              Effect.andThen(Effect.fail(
                new Unavailable({
                  code: "query_timeout",
                  message: `${error.message}: narrow it (a channelId, a shorter range, more specific words)`,
                  retryAfterSeconds: 1
                })
              ))
            ))
        )
      })

    /**
     * The page after `after`; when it is empty, the channel and the cursor
     * are checked (404, 400 past the newest event), and when the request may
     * wait, the poll waits for CommitWatch to see its channel change
     * (PgBouncer cannot carry LISTEN) and reads its page again then, until
     * an event is ready or its time runs out.
     */
    const eventsAfter = (after: bigint, channelId: ChannelId | undefined, limit: number, waitSeconds: number) =>
      watch.poll({
        channelId,
        after,
        wait: Duration.seconds(waitSeconds),
        page: query.eventsJson({ after, channelId, limit }),
        whenEmpty: Effect.andThen(requireChannel(watch, channelId), requireCursorInRange(watch, after))
      })

    return handlers
      .handle("channels", () => orUnavailable(query.channels.pipe(Effect.map((channels) => ({ channels })))))
      .handle("events", ({ query: params }) =>
        orUnavailable(Effect.gen(function*() {
          const limit = yield* pageSize(config, params.limit)
          const after = yield* decodeCursor(params.after, "after")
          const wait = params.wait ?? 0
          if (wait > maxWaitSeconds) {
            return yield* new InvalidRequest({
              code: "invalid_parameter",
              message: `wait must be between 0 and ${maxWaitSeconds} seconds; got ${wait}`
            })
          }
          const events = yield* eventsAfter(after, params.channelId, limit, wait)
          const last = events.at(-1)
          return eventPageResponse(events, encodeCursor(last === undefined ? after : last.seq))
        })))
      .handle("message", ({ params }) =>
        orUnavailable(query.history(params.channelId, params.messageId).pipe(
          Effect.catchTag("MessageNotFound", (error) =>
            Effect.gen(function*() {
              yield* requireChannel(watch, params.channelId)
              return yield* new NotFound({ code: "message_not_found", message: error.message })
            }))
        )))
      .handle("recent", ({ params, query: options }) =>
        orUnavailable(Effect.gen(function*() {
          const limit = yield* pageSize(config, options.limit)
          const messages = yield* recentMessages(params.channelId, limit)
          if (messages.length === 0) yield* requireChannel(watch, params.channelId)
          return { messages }
        })))
      .handle("search", ({ query: options }) =>
        orUnavailable(Effect.gen(function*() {
          const limit = yield* pageSize(config, options.limit)
          const hits = yield* expensive(query.search({ query: options.q, channelId: options.channelId, limit }))
          if (hits.length === 0) yield* requireChannel(watch, options.channelId)
          return { hits }
        })))
      .handle("counts", ({ query: options }) =>
        orUnavailable(Effect.gen(function*() {
          const from = yield* parseTime(options.from, "from")
          const to = yield* parseTime(options.to, "to")
          const bucket = options.bucket ?? "hour"
          const windows = Math.ceil((to.getTime() - from.getTime()) / bucketMillis[bucket])
          if (windows <= 0 || windows > maxCountBuckets) {
            return yield* new InvalidRequest({
              code: "invalid_parameter",
              message: `from must be before to, and the range at most ${maxCountBuckets} ${bucket}s; ` +
                `it spans ${windows}: use a larger bucket (minute, hour, day) or a shorter range`
            })
          }
          if (options.channelId !== undefined) yield* requireChannel(watch, options.channelId)
          const buckets = yield* expensive(query.counts({ channelId: options.channelId, from, to, bucket }))
          return { buckets }
        })))
  })
)
