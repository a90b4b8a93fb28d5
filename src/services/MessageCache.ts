/**
 * The hot tier: recent messages per channel and the dedup check, on Redis.
 * Optional by design: every failure is a `CacheUnavailable` that the caller
 * may degrade on, never a reason to stop the durable write.
 */
import { type Array, Context, type Effect, type Option, Schema } from "effect"
import { describeCause } from "../domain/DescribeCause.ts"
import type { ChannelId, MessageEvent, MessageId } from "../domain/Message.ts"

export class CacheUnavailable extends Schema.TaggedError<CacheUnavailable>()("CacheUnavailable", {
  operation: Schema.String,
  cause: Schema.Defect()
}) {
  override get message(): string {
    return `Redis ${this.operation} failed: ${describeCause(this.cause)}`
  }
}

/** `new` the first time a key is seen within the dedup window, `duplicate` after. */
export type DedupVerdict = "new" | "duplicate"

export class MessageCache extends Context.Service<MessageCache, {
  /**
   * The dedup check (an atomic SET NX with a TTL on the event's stable key)
   * and, for a new event, the cache write, in one round trip.
   */
  readonly remember: (event: MessageEvent) => Effect.Effect<DedupVerdict, CacheUnavailable>
  /** `remember` for many events in one round trip; verdicts in the same order. */
  readonly rememberAll: (
    events: Array.NonEmptyReadonlyArray<MessageEvent>
  ) => Effect.Effect<ReadonlyArray<DedupVerdict>, CacheUnavailable>
  /** Up to `limit` recent events of a channel, newest message first. */
  readonly recent: (channelId: ChannelId, limit: number) => Effect.Effect<ReadonlyArray<MessageEvent>, CacheUnavailable>
  /** One event by its stable key, while it is cached. */
  readonly get: (key: string) => Effect.Effect<Option.Option<MessageEvent>, CacheUnavailable>
  /** The highest message id seen in a channel. */
  readonly lastSeenMessageId: (channelId: ChannelId) => Effect.Effect<Option.Option<MessageId>, CacheUnavailable>
  readonly ping: Effect.Effect<void, CacheUnavailable>
}>()("telegram-gateway/MessageCache") {}
