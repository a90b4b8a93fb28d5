/**
 * The MessageCache in memory: the same dedup rule (a key is `new` once, then
 * `duplicate`), the recent window per channel and the highest id seen, no
 * Redis. For programs built from layers in tests, where the logic between the
 * services is under test rather than Redis (test/layers/RedisMessageCache.test.ts
 * is for that). `beforeCall` lets a test make any call fail, die or hang, as a
 * real connection can; a failed call changes nothing.
 */
import { Effect, Layer, Option } from "effect"
import { type ChannelId, eventChannelId, eventKey, eventMessageId, type MessageEvent, type MessageId } from "../domain/Message.ts"
import type { CacheUnavailable, DedupVerdict } from "../services/MessageCache.ts"
import { MessageCache } from "../services/MessageCache.ts"

export interface MemoryCacheOptions {
  /** Runs before every call, named by operation; its failure (or defect, or hang) is the call's. */
  readonly beforeCall?: (operation: string) => Effect.Effect<void, CacheUnavailable>
}

export interface MemoryMessageCache {
  /** Every event remembered as new, by stable key, in arrival order. */
  readonly remembered: Map<string, MessageEvent>
}

export const make = (options: MemoryCacheOptions = {}) =>
  Effect.sync(() => {
    const remembered = new Map<string, MessageEvent>()
    const lastSeen = new Map<ChannelId, MessageId>()
    const guarded = <A>(operation: string, body: () => A): Effect.Effect<A, CacheUnavailable> =>
      (options.beforeCall?.(operation) ?? Effect.void).pipe(Effect.andThen(Effect.sync(body)))
    const rememberOne = (event: MessageEvent): DedupVerdict => {
      const key = eventKey(event)
      if (remembered.has(key)) return "duplicate"
      remembered.set(key, event)
      const channelId = eventChannelId(event)
      const messageId = eventMessageId(event)
      const last = lastSeen.get(channelId)
      if (last === undefined || messageId > last) lastSeen.set(channelId, messageId)
      return "new"
    }
    const cache = MessageCache.of({
      remember: (event) => guarded("remember", () => rememberOne(event)),
      rememberAll: (events) => guarded("rememberAll", () => events.map(rememberOne)),
      recent: (channelId, limit) =>
        guarded("recent", () =>
          [...remembered.values()]
            .filter((event) => eventChannelId(event) === channelId)
            .sort((a, b) => eventMessageId(b) - eventMessageId(a))
            .slice(0, limit)),
      get: (key) => guarded("get", () => Option.fromNullishOr(remembered.get(key))),
      lastSeenMessageId: (channelId) =>
        guarded("lastSeenMessageId", () => Option.fromNullishOr(lastSeen.get(channelId))),
      ping: guarded("ping", () => undefined)
    })
    return { cache, memory: { remembered } satisfies MemoryMessageCache }
  })

/** The cache alone, as a layer. */
export const layer = (options: MemoryCacheOptions = {}) =>
  Layer.effect(MessageCache, Effect.map(make(options), ({ cache }) => cache))
