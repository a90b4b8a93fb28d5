/**
 * One watcher of new commits, shared by every waiting long poll: every
 * `api.longPollInterval` it reads the events committed after the last one it
 * saw (the same settled page the polls get, so it never passes one that
 * could still commit below it) and tells the waiting polls which channels
 * changed. A waiting poll costs nothing until its channel changes; then it
 * queries its own page once. 500 waiting polls cost one query per interval,
 * not 500. While `event_seq` has drawn nothing past the last event seen, no
 * event can be there to read, and the look is one read of the sequence
 * instead of a page: a page without a channel is the costly poll, tens of
 * milliseconds over TimescaleDB's compressed chunks (docs/database.md).
 */
import { Context, type Duration, Effect, Layer, Option, PubSub, Ref, Schedule, type Scope } from "effect"
import type { ChannelId } from "../../domain/Message.ts"
import { ApiConfig } from "../../services/ApiConfig.ts"
import { MessageQuery } from "../../services/MessageQuery.ts"

/** Events one watcher query reads at most; more wait for the next interval. */
const pageSize = 1000

export class CommitWatch extends Context.Service<CommitWatch, {
  /**
   * A waiter for `channelId` (any channel when undefined), subscribed at
   * once: its `next` waits, within `timeout`, until the watcher sees an
   * event of that channel commit (true), or the time runs out (false).
   * Query after taking the waiter, so that nothing committed between the
   * query and the wait is missed.
   */
  readonly waiter: (channelId: ChannelId | undefined) => Effect.Effect<
    { readonly next: (timeout: Duration.Duration) => Effect.Effect<boolean> },
    never,
    Scope.Scope
  >
}>()("telegram-gateway/api/CommitWatch") {
  static readonly layer = Layer.effect(
    CommitWatch,
    Effect.gen(function*() {
      const config = yield* ApiConfig
      const query = yield* MessageQuery
      const changed = yield* PubSub.unbounded<ReadonlySet<number>>()
      const watermark = yield* Ref.make(Option.none<bigint>())
      const failing = yield* Ref.make(false)

      const look = Effect.gen(function*() {
        const after = yield* Ref.get(watermark)
        if (Option.isNone(after)) {
          yield* Ref.set(watermark, Option.some(yield* query.newestSeq))
          return
        }
        if ((yield* query.newestDrawnSeq) <= after.value) return
        const events = yield* query.events({ after: after.value, channelId: undefined, limit: pageSize })
        const last = events.at(-1)
        if (last === undefined) return
        yield* Ref.set(watermark, Option.some(last.seq))
        yield* PubSub.publish(changed, new Set(events.map((event) => event.channelId)))
      }).pipe(
        Effect.tap(() => Ref.set(failing, false)),
        Effect.catch((error) =>
          Effect.gen(function*() {
            // Once per outage: the polls still answer when their time runs out.
            if (!(yield* Ref.getAndSet(failing, true))) {
              yield* Effect.logWarning("Long-poll watcher cannot read new commits").pipe(
                Effect.annotateLogs({ error: error.message })
              )
            }
          })
        )
      )
      yield* look.pipe(Effect.repeat(Schedule.spaced(config.longPollInterval)), Effect.forkScoped)

      const waiter = (channelId: ChannelId | undefined) =>
        Effect.map(PubSub.subscribe(changed), (subscription) => ({
          next: (timeout: Duration.Duration) => {
            const relevant = PubSub.take(subscription).pipe(
              Effect.repeat({ until: (channels) => channelId === undefined || channels.has(channelId) })
            )
            return relevant.pipe(Effect.timeoutOption(timeout), Effect.map(Option.isSome))
          }
        }))

      return CommitWatch.of({ waiter })
    })
  )
}
