/** What every handler does with a request's limits and a store failure. */
import { Effect } from "effect"
import type { ChannelId } from "../../domain/Message.ts"
import type { ApiConfig } from "../../services/ApiConfig.ts"
import { CursorBeyondNewest, type QueryError } from "../../services/MessageQuery.ts"
import type { CommitWatch } from "./CommitWatch.ts"
import { InvalidRequest, NotFound, Unavailable } from "./Errors.ts"

/** `limit` within 1..maxLimit (the schema already refused < 1 and non-integers). */
export const pageSize = (config: ApiConfig, limit: number | undefined) =>
  limit === undefined
    ? Effect.succeed(Math.min(config.defaultLimit, config.maxLimit))
    : limit > config.maxLimit
    ? Effect.fail(
      new InvalidRequest({ code: "invalid_parameter", message: `limit must be between 1 and ${config.maxLimit}; got ${limit}` })
    )
    : Effect.succeed(limit)

/** A store failure is logged with its cause and answered as a 503 without it. */
export const orUnavailable = <A, E extends { readonly _tag: string }, R>(effect: Effect.Effect<A, E | QueryError, R>) =>
  effect.pipe(
    Effect.catchIf((error): error is QueryError => error._tag === "QueryError", (error) =>
      Effect.logWarning("PostgreSQL read failed").pipe(
        Effect.annotateLogs({ operation: error.operation, error: error.message }),
        Effect.andThen(Effect.fail(new Unavailable({
          code: "unavailable",
          message: "The message store is unavailable; retry shortly",
          retryAfterSeconds: 1
        })))
      ))
  )

export const unknownChannel = (channelId: ChannelId) =>
  new NotFound({
    code: "unknown_channel",
    message: `Channel ${channelId} is not known to the gateway; GET /api/v1/channels lists the channels`
  })

/**
 * Fails with 404 when the channel is not known; used once a result came back
 * empty. A channel found known lately is not asked for again (CommitWatch).
 */
export const requireChannel = (watch: CommitWatch["Service"], channelId: ChannelId | undefined) =>
  channelId === undefined ? Effect.void : Effect.gen(function*() {
    if (!(yield* watch.channelKnown(channelId))) return yield* unknownChannel(channelId)
  })

/** A cursor past every event sequence value drawn (MessageQuery.CursorBeyondNewest), as the 400 the API answers. */
export const beyondNewest = (error: CursorBeyondNewest) =>
  new InvalidRequest({ code: "cursor_beyond_newest", message: error.message })

/**
 * Fails with 400 when `after` is past the last value `event_seq` drew; used
 * once a page came back empty (a page with events proves the cursor below
 * them). Against the sequence, not the newest committed event: a cursor the
 * API handed out never exceeds it, even while the events above it are still
 * committing or after retention dropped them. The sequence only grows, so
 * a cursor at or below a value read before needs no query (CommitWatch).
 */
export const requireCursorInRange = (watch: CommitWatch["Service"], after: bigint) =>
  after === 0n ? Effect.void : Effect.gen(function*() {
    const newest = yield* watch.drawnAtLeast(after)
    if (after > newest) return yield* beyondNewest(new CursorBeyondNewest({ seq: after, newest }))
  })
