/**
 * The recent window of a channel: from the Redis hot cache when it holds the
 * whole window asked for, from PostgreSQL otherwise (Redis down, window
 * larger than the cache keeps, entries expired). Both keep the same window:
 * the current version of each live message, newest first.
 */
import { Duration, Effect } from "effect"
import type { ChannelId, TelegramMessage } from "../../domain/Message.ts"
import { MessageCache } from "../../services/MessageCache.ts"
import { MessageQuery } from "../../services/MessageQuery.ts"

/** Past this the cache is treated as down for the request: PostgreSQL answers. */
const cacheDeadline = Duration.millis(250)

export const recentMessages = Effect.fn("RecentMessages.read")(function*(channelId: ChannelId, limit: number) {
  const cache = yield* MessageCache
  const query = yield* MessageQuery
  const cached = yield* cache.recent(channelId, limit).pipe(
    Effect.timeout(cacheDeadline),
    Effect.map((events) =>
      events.flatMap((event): ReadonlyArray<TelegramMessage> => event._tag === "MessageDeleted" ? [] : [event.message])
    ),
    Effect.catch(() => Effect.succeed([] as ReadonlyArray<TelegramMessage>))
  )
  if (cached.length >= limit) return cached.slice(0, limit)
  return yield* query.recent(channelId, limit)
})
