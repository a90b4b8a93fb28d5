/**
 * The account owner's side of `telegram-gateway backfill`
 * (src/services/BackfillRequests.ts): every `telegram.backfillPollInterval`
 * the Telegram source (src/layers/GramJsTelegramSource.ts) looks for
 * unfinished requests of its account and serves them one at a time:
 *
 * - the range is resolved once (a date becomes the newest message id sent
 *   before it; no upper bound means the channel's newest message now) and
 *   recorded, so a resumed run pages the same range;
 * - the history is paged oldest first with the same pager as too-long
 *   recovery, each page handed to ingestion as one source batch: the request's
 *   cursor moves only when that page is committed, and every tier dedupes on
 *   the event key, so a page read twice (after a kill) is stored once;
 * - calls go through the source's call path: a FLOOD_WAIT pauses this method
 *   for this chat only and is persisted, a refusal fails the request;
 * - it runs beside the live engine, not instead of it: no pts moves, no
 *   difference waits for it, and its pages queue behind live batches in the
 *   bounded ingestion queue.
 */
import { Deferred, type Duration, Effect, Metric, Schedule } from "effect"
import type { SourceBatch } from "../domain/SourceBatch.ts"
import type { MessageEvent } from "../domain/Message.ts"
import type { BackfillRequest, BackfillRequests, BackfillStoreError } from "../services/BackfillRequests.ts"
import type { KnownChat } from "../services/ChannelRegistry.ts"
import * as Metrics from "../services/Metrics.ts"
import type { TelegramFatal } from "../services/TelegramSource.ts"

/** Telegram refused the chat (CHANNEL_PRIVATE, ...): structurally the source's own refusal. */
export interface Refusal {
  readonly _tag: "ChannelRefused"
  readonly error: string
}

export type BackfillTarget =
  | { readonly _tag: "Unknown" }
  | { readonly _tag: "Refused"; readonly label: string; readonly error: string }
  | { readonly _tag: "Known"; readonly label: string; readonly chat: KnownChat }

export interface BackfillDeps {
  readonly requests: BackfillRequests["Service"]
  readonly pollInterval: Duration.Duration
  /** The configured chat with this telegram.channels entry, once the engine resolved it. */
  readonly target: (channel: string) => Effect.Effect<BackfillTarget>
  /** The newest message id sent before `date` (0 when none); the newest of all without a date. */
  readonly newestBefore: (chat: KnownChat, label: string, date: Date | null) => Effect.Effect<number, TelegramFatal | Refusal>
  /** The chat's history in (after, upTo], oldest first, one page of events at a time. */
  readonly history: (
    chat: KnownChat,
    label: string,
    after: number,
    upTo: number,
    onPage: (events: ReadonlyArray<MessageEvent>, newestId: number) => Effect.Effect<void>
  ) => Effect.Effect<void, TelegramFatal | Refusal>
  /** Hands a batch to ingestion (waits while its queue is full). */
  readonly offer: (batch: SourceBatch) => Effect.Effect<void>
}

/** Writes that record a request's outcome: retried (capped backoff) until PostgreSQL answers, warned once. */
const settle = (what: string, write: Effect.Effect<void, BackfillStoreError>) => {
  let failures = 0
  return write.pipe(
    Effect.tapError((error) => {
      failures += 1
      return Metric.update(Metrics.telegramBackfillStoreFailures, 1).pipe(
        Effect.andThen(failures === 1 ? Effect.logWarning(`${what} not recorded, retrying: ${error.message}`) : Effect.void)
      )
    }),
    Effect.retry(Schedule.min([Schedule.exponential("200 millis"), Schedule.spaced("5 seconds")]).pipe(Schedule.jittered))
  )
}

const describeRange = (request: BackfillRequest) =>
  [
    request.since !== null ? `since ${request.since.toISOString()}` : request.fromId !== null ? `from id ${request.fromId}` : "from the first message",
    request.until !== null ? `until ${request.until.toISOString()}` : request.untilId !== null ? `until id ${request.untilId}` : "to the newest"
  ].join(" ")

const finished = (status: "done" | "failed") =>
  Metric.update(Metrics.telegramBackfillRequests.pipe(Metric.withAttributes({ status })), 1)

/** One request, to its end (done or failed). */
const serve = (deps: BackfillDeps, request: BackfillRequest) =>
  Effect.gen(function*() {
    const target = yield* deps.target(request.channel)
    if (target._tag !== "Known") {
      const error = target._tag === "Unknown"
        ? `${request.channel} is not among this account's telegram.channels`
        : `Telegram refuses ${target.label} (${target.error})`
      yield* settle(`backfill #${request.id}'s failure`, deps.requests.fail(request.id, error))
      yield* finished("failed")
      return yield* Effect.logError(`backfill #${request.id} failed: ${error}`)
    }
    const { chat, label } = target
    const run = Effect.gen(function*() {
      let afterId = request.afterId
      let upToId = request.upToId
      if (afterId === null || upToId === null) {
        afterId = request.fromId !== null
          ? request.fromId - 1
          : request.since !== null
          ? yield* deps.newestBefore(chat, label, request.since)
          : 0
        upToId = request.untilId ?? (yield* deps.newestBefore(chat, label, request.until))
        yield* settle(`backfill #${request.id}'s start`, deps.requests.start(request.id, { afterId, upToId }))
      }
      // Committed: moved by each page's onCommitted, in page order.
      const committed = { cursor: Math.max(afterId, request.cursorId ?? afterId), messages: request.messages }
      const saved = { ...committed }
      yield* Effect.logInfo(
        `backfill #${request.id} of ${label} (${describeRange(request)}): message ids (${afterId}, ${upToId}]` +
          (committed.cursor > afterId ? `, resuming after ${committed.cursor}` : "")
      )
      const perChannel = Metrics.telegramBackfillMessages.pipe(Metric.withAttributes({ channel: String(chat.channelId) }))
      yield* deps.history(chat, label, committed.cursor, upToId, (events, newestId) =>
        Effect.gen(function*() {
          yield* deps.offer({
            events,
            onCommitted: Effect.suspend(() => {
              committed.cursor = Math.max(committed.cursor, newestId)
              committed.messages += events.length
              return Metric.update(perChannel, events.length)
            })
          })
          if (committed.cursor > saved.cursor) {
            saved.cursor = committed.cursor
            saved.messages = committed.messages
            // Progress is for the operator and for resuming: a failed write only means re-reading a few pages.
            yield* deps.requests.progress(request.id, saved.cursor, saved.messages).pipe(
              Effect.catch((error) =>
                Metric.update(Metrics.telegramBackfillStoreFailures, 1).pipe(
                  Effect.andThen(Effect.logWarning(`backfill #${request.id}: progress not recorded (${error.message}); it is recorded with the next page`))
                ))
            )
          }
        }))
      // Done once every page before it is committed.
      const allCommitted = yield* Deferred.make<void>()
      yield* deps.offer({ events: [], onCommitted: Deferred.succeed(allCommitted, undefined).pipe(Effect.asVoid) })
      yield* Deferred.await(allCommitted)
      yield* settle(`backfill #${request.id}'s completion`, deps.requests.finish(request.id, committed.messages))
      yield* finished("done")
      yield* Effect.logInfo(`backfill #${request.id} of ${label} done: ${committed.messages} message(s) committed from ids (${afterId}, ${upToId}]`)
    })
    yield* run.pipe(
      Effect.catchTag("ChannelRefused", (refusal) => {
        const error = `Telegram refuses ${label} (${refusal.error})`
        return settle(`backfill #${request.id}'s failure`, deps.requests.fail(request.id, error)).pipe(
          Effect.andThen(finished("failed")),
          Effect.andThen(Effect.logError(`backfill #${request.id} failed: ${error}`))
        )
      })
    )
  }).pipe(Effect.annotateLogs("backfill", request.id))

/** Serves the account's backfill requests for as long as the connection lasts; a new connection resumes them. */
export const runBackfills = (deps: BackfillDeps) =>
  Effect.gen(function*() {
    while (true) {
      const requests = yield* deps.requests.unfinished.pipe(
        Effect.catch((error) =>
          Metric.update(Metrics.telegramBackfillStoreFailures, 1).pipe(
            Effect.andThen(Effect.logWarning(`reading backfill requests failed, will look again: ${error.message}`)),
            Effect.as([] as ReadonlyArray<BackfillRequest>)
          ))
      )
      for (const request of requests) yield* serve(deps, request)
      yield* Effect.sleep(deps.pollInterval)
    }
  })
