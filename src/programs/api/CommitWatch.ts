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
 *
 * What the watcher reads also answers the checks of an empty page from
 * memory: the sequence only grows, so a cursor at or below a value it read
 * is in range; and a channel seen to exist (or to commit) stays known for
 * `channelMemory`. Only a cursor above the last value read, or a channel not
 * known, costs a query, and polls that ask the same at once share it: 500
 * long polls arriving together on 100 channels cost 100 channel reads, not
 * 500 queued before every other key's poll. So a long poll costs one query
 * when it arrives (its page), and none when its time runs out: no commit
 * seen for its channel means its cursor stays where it was, so answering
 * empty skips nothing. A
 * poll that arrives at the head (its cursor at or past the last event the
 * watcher read) costs none on arrival either: whatever commits past that
 * event reaches it through the watcher.
 */
import { Cache, Clock, Context, Duration, Effect, Layer, Option, PubSub, Ref, Schedule, type Scope } from "effect"
import type { ChannelId } from "../../domain/Message.ts"
import { ApiConfig } from "../../services/ApiConfig.ts"
import { MessageQuery, type QueryError } from "../../services/MessageQuery.ts"

/** Events one watcher query reads at most; more wait for the next interval. */
const pageSize = 1000

/** How long a channel found to exist is taken as known without asking the database again. */
export const channelMemory = Duration.minutes(1)

/**
 * The share of a long poll's `wait` it may end early by (docs/api.md): polls
 * that arrive together, as a client's many connections do when they start,
 * would otherwise all time out together and arrive together again, every
 * `wait`, for good.
 */
export const waitSpread = 0.2

/**
 * The wait of the `n`th long poll: `wait` shortened by a fraction of
 * `waitSpread` that steps through [0, 1) by the golden ratio, so that any
 * run of consecutive polls is spread evenly over the last `waitSpread` of
 * `wait`, without randomness.
 */
export const spreadWait = (wait: Duration.Duration, n: number): Duration.Duration => {
  const step = (n * 0.6180339887498949) % 1
  return Duration.millis(Math.round(Duration.toMillis(wait) * (1 - waitSpread * step)))
}

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
  /**
   * A long poll: `page` once, and while it is empty, `whenEmpty` (the checks
   * of an empty page) and then a wait of up to `wait` (less by at most
   * `waitSpread`, see `spreadWait`) in which every commit the watcher sees on
   * `channelId` reads `page` again. Without such a commit it answers the
   * empty page it read, with no query at its deadline. A poll whose `after`
   * is at or past the last event the watcher read (and whose last look
   * succeeded) skips the page on arrival: every event past that one reaches
   * the poll's waiter when the watcher reads it, so the page is known empty.
   */
  readonly poll: <A, E, R, E2, R2>(options: {
    readonly channelId: ChannelId | undefined
    readonly after: bigint
    readonly wait: Duration.Duration
    readonly page: Effect.Effect<ReadonlyArray<A>, E, R>
    readonly whenEmpty: Effect.Effect<void, E2, R2>
  }) => Effect.Effect<ReadonlyArray<A>, E | E2, R | R2>
  /** Whether the channel is known to the gateway (MessageQuery.channelExists), from memory when it was lately. */
  readonly channelKnown: (channelId: ChannelId) => Effect.Effect<boolean, QueryError>
  /**
   * A value `event_seq` has drawn: the last one the watcher read when that
   * is at least `seq`, or else the sequence's value read now.
   */
  readonly drawnAtLeast: (seq: bigint) => Effect.Effect<bigint, QueryError>
}>()("telegram-gateway/api/CommitWatch") {
  static readonly layer = Layer.effect(
    CommitWatch,
    Effect.gen(function*() {
      const config = yield* ApiConfig
      const query = yield* MessageQuery
      const changed = yield* PubSub.unbounded<ReadonlySet<ChannelId>>()
      const watermark = yield* Ref.make(Option.none<bigint>())
      const failing = yield* Ref.make(false)
      /** The largest value of `event_seq` read so far: the sequence never goes back. */
      let drawn = 0n
      const sawDrawn = (seq: bigint) => {
        if (seq > drawn) drawn = seq
        return drawn
      }
      /**
       * `read` of one key shared by the askers that arrive while it is in
       * flight (a cache of reads in flight, no time to live). Each read is
       * numbered, so an asker can tell whether the one it joined began after
       * it arrived: only such a read is sure to see what committed before
       * the asker's request. An answer that is not `enough` from a read begun
       * earlier is read again for the asker alone.
       */
      let readsBegun = 0
      const sharedReads = <K, A, E>(read: (key: K) => Effect.Effect<A, E>) =>
        Effect.map(
          Cache.makeWith((key: K) =>
            Effect.suspend(() => {
              const number = ++readsBegun
              return Effect.map(read(key), (value) => ({ value, number }))
            }), { capacity: Number.POSITIVE_INFINITY, timeToLive: () => Duration.zero }),
          (reads) => (key: K, enough: (value: A) => boolean) =>
            Effect.suspend(() => {
              const arrived = readsBegun
              return Effect.flatMap(Cache.get(reads, key), ({ number, value }) =>
                enough(value) || number > arrived ? Effect.succeed(value) : read(key))
            })
        )

      /** Channel id to the time (ms) until which it counts as known. */
      const known = new Map<ChannelId, number>()
      const remember = (channelIds: Iterable<ChannelId>) =>
        Effect.map(Clock.currentTimeMillis, (now) => {
          for (const channelId of channelIds) known.set(channelId, now + Duration.toMillis(channelMemory))
        })
      const channelExists = yield* sharedReads(query.channelExists)
      const readDrawn = yield* sharedReads((_: "drawn") => Effect.map(query.newestDrawnSeq, sawDrawn))

      const look = Effect.gen(function*() {
        const after = yield* Ref.get(watermark)
        if (Option.isNone(after)) {
          yield* Ref.set(watermark, Option.some(sawDrawn(yield* query.newestSeq)))
          return
        }
        if (sawDrawn(yield* query.newestDrawnSeq) <= after.value) return
        const events = yield* query.events({ after: after.value, channelId: undefined, limit: pageSize })
        const last = events.at(-1)
        if (last === undefined) return
        yield* Ref.set(watermark, Option.some(last.seq))
        const channels = new Set(events.map((event) => event.channelId))
        yield* remember(channels)
        yield* PubSub.publish(changed, channels)
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

      /**
       * Whether no event after `after` can have been read by the watcher yet:
       * `after` is at or past its watermark and its last look succeeded. Asked
       * after subscribing, so every event past the watermark, committed or
       * not yet, reaches the subscriber when a later look reads it.
       */
      const caughtUp = (after: bigint) =>
        Effect.map(Effect.all([Ref.get(watermark), Ref.get(failing)]), ([seen, down]) =>
          !down && Option.isSome(seen) && after >= seen.value)

      let polls = 0
      const poll = <A, E, R, E2, R2>(options: {
        readonly channelId: ChannelId | undefined
        readonly after: bigint
        readonly wait: Duration.Duration
        readonly page: Effect.Effect<ReadonlyArray<A>, E, R>
        readonly whenEmpty: Effect.Effect<void, E2, R2>
      }): Effect.Effect<ReadonlyArray<A>, E | E2, R | R2> => {
        const { page, whenEmpty } = options
        if (Duration.isZero(options.wait)) {
          return Effect.flatMap(page, (events) => events.length > 0 ? Effect.succeed(events) : Effect.as(whenEmpty, events))
        }
        return Effect.scoped(Effect.gen(function*() {
          const woken = yield* waiter(options.channelId)
          const empty: ReadonlyArray<A> = (yield* caughtUp(options.after)) ? [] : yield* page
          if (empty.length > 0) return empty
          yield* whenEmpty
          const deadline = (yield* Clock.currentTimeMillis) + Duration.toMillis(spreadWait(options.wait, polls++))
          while (true) {
            const left = deadline - (yield* Clock.currentTimeMillis)
            if (left <= 0 || !(yield* woken.next(Duration.millis(left)))) return empty
            const events = yield* page
            if (events.length > 0) return events
          }
        }))
      }

      const channelKnown = (channelId: ChannelId) =>
        Effect.gen(function*() {
          if ((known.get(channelId) ?? 0) > (yield* Clock.currentTimeMillis)) return true
          const exists = yield* channelExists(channelId, (exists) => exists)
          if (exists) yield* remember([channelId])
          return exists
        })

      const drawnAtLeast = (seq: bigint) =>
        seq <= drawn
          ? Effect.succeed(drawn)
          : readDrawn("drawn", (read) => read >= seq)

      return CommitWatch.of({ waiter, poll, channelKnown, drawnAtLeast })
    })
  )
}
