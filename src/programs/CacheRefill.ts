/**
 * Refills the hot cache from PostgreSQL after Redis lost its data (a restart,
 * a failover, an outage during which events went to the database only): each
 * active channel's recent window and the dedup keys of those events are
 * written back through `MessageCache.rememberAll`, which keeps whatever Redis
 * still holds and adds only what it lacks. Runs at start and every time
 * Redis comes back; requests arriving during a refill fold into one more.
 */
import { Array, Effect, Metric, Queue } from "effect"
import type { MessageCache } from "../services/MessageCache.ts"
import type { MessageStore } from "../services/MessageStore.ts"
import * as Metrics from "../services/Metrics.ts"
import type { RedisConfig } from "../services/GatewayConfig.ts"

/** Events written to Redis per round trip. */
const chunkSize = 500

export interface CacheRefill {
  /** Asks for a refill; never waits. */
  readonly request: Effect.Effect<void>
}

export const makeCacheRefill = Effect.fnUntraced(function*(options: {
  readonly cache: MessageCache["Service"]
  readonly store: MessageStore["Service"]
  readonly redis: RedisConfig
}) {
  const { cache, redis, store } = options
  const requests = yield* Queue.sliding<void>(1)

  const refillChannel = (channelId: Parameters<MessageStore["Service"]["recentEvents"]>[0]["channelId"]) =>
    Effect.gen(function*() {
      const events = yield* store.recentEvents({ channelId, maxAge: redis.recentMaxAge, limit: redis.recentLimit })
      let added = 0
      for (const chunk of Array.chunksOf(events, chunkSize)) {
        if (!Array.isArrayNonEmpty(chunk)) continue
        const verdicts = yield* cache.rememberAll(chunk)
        added += verdicts.filter((verdict) => verdict === "new").length
      }
      return added
    })

  const refill = Effect.gen(function*() {
    const channels = yield* store.activeChannels(redis.recentMaxAge)
    let added = 0
    for (const channelId of channels) added += yield* refillChannel(channelId)
    yield* Metric.update(Metrics.cacheRefilled, added)
    if (added > 0) {
      yield* Effect.logInfo(`Redis cache refilled from PostgreSQL: ${added} event(s) over ${channels.length} channel(s)`)
    }
  }).pipe(
    Effect.catch((error) => Effect.logWarning(`Redis cache refill failed, it will be tried when Redis next recovers: ${error.message}`)),
    Effect.withSpan("CacheRefill.refill")
  )

  yield* Queue.take(requests).pipe(Effect.andThen(refill), Effect.forever, Effect.forkScoped)
  return { request: Queue.offer(requests, undefined).pipe(Effect.asVoid) } satisfies CacheRefill
})
