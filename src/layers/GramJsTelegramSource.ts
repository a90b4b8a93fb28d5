/**
 * The TelegramSource on GramJS: the update engine (README.md, "The update
 * engine"; docs/architecture.md has the diagram).
 *
 * State. Per channel the pts (and newest message id) up to which everything
 * is committed, and the account's common pts/qts/date/seq, live in PostgreSQL
 * (src/layers/PgUpdateStateStore.ts). They move only in a batch's
 * `onCommitted` (src/domain/SourceBatch.ts), are written by a flusher fiber
 * and once more when the source closes, and a start resumes exactly there.
 *
 * Sequencing. Each configured channel has a worker fiber per connection. A
 * pushed update goes to its channel's bounded inbox (full: dropped, counted,
 * and recovered by a difference), then through Telegram's pts rule
 * (src/layers/PtsSequence.ts): applied in order, ignored when already applied,
 * and held on a gap for `gapHold` before `updates.getChannelDifference` is
 * fetched. The worker also fetches the difference at start and on every
 * (re)connect, on `updateChannelTooLong`, and on its own polling deadline
 * (`pollInterval`, floored by the server's `timeout` and by the channel count
 * over `maxPollRate`, spread at random), so a channel Telegram does not push
 * stays fresh. Differences are paged until `final`.
 *
 * Too long. On `channelDifferenceTooLong` the history between the newest
 * message read and the dialog's top message is paged in (no cap), the
 * `rereadWindow` most recent stored messages are read again to find edits and
 * deletions the gap swallowed, and the pts jumps to the dialog's.
 *
 * Recovering. While a chain of differences or a too-long gap is fetched, the
 * channel's status is `recovering` with its progress (freshness keeps growing:
 * it is behind), and the staleness warning names the recovery.
 *
 * Backfill. Requests of `telegram-gateway backfill` for this account are
 * served beside the live engine with the too-long path's history pager
 * (src/layers/GramJsBackfill.ts).
 *
 * Flood waits pause only the method and chat they hit and are persisted; a
 * channel Telegram refuses (CHANNEL_PRIVATE) is dropped with an error naming
 * it while the others go on. Access hashes come from the ChannelRegistry.
 */
import { Cause, Clock, Data, Duration, Effect, Layer, Metric, Option, Queue, Random, Ref, Schedule, Semaphore, Stream } from "effect"
import { Api, helpers } from "telegram"
import { Raw } from "telegram/events/Raw.js"
import type { MessageEvent } from "../domain/Message.ts"
import type { SourceBatch } from "../domain/SourceBatch.ts"
import { BackfillRequests } from "../services/BackfillRequests.ts"
import { ChannelRegistry, type KnownChat } from "../services/ChannelRegistry.ts"
import { TelegramConfig } from "../services/GatewayConfig.ts"
import * as Metrics from "../services/Metrics.ts"
import {
  type ChannelRecovery,
  type ChannelStatus,
  type ConnectionState,
  type TelegramFatal,
  TelegramSource
} from "../services/TelegramSource.ts"
import { type AccountUpdateState, type UpdateStateError, UpdateStateStore } from "../services/UpdateState.ts"
import { runBackfills } from "./GramJsBackfill.ts"
import { type CallError, clientSettings, type GramJs, makeGramJs } from "./GramJsClient.ts"
import { forEachHistoryPage, historyPageAbove } from "./GramJsHistory.ts"
import { makeDirectory } from "./GramJsMapping.ts"
import { type ChatReference, inputPeerOf, parseChatReference, resolveChat } from "./GramJsResolve.ts"
import { deletedEvent, directoryOfPush, eventsOf, messageEvent, sequencingOf, type UpdateItem } from "./GramJsUpdates.ts"
import * as PgBackfillRequests from "./PgBackfillRequests.ts"
import * as PgChannelRegistry from "./PgChannelRegistry.ts"
import * as PgUpdateStateStore from "./PgUpdateStateStore.ts"
import { PtsSequence, type Sequenced } from "./PtsSequence.ts"
import { readSession } from "./SessionFile.ts"

const DIFFERENCE_LIMIT = 100
/** Telegram's errors meaning the account may not read the channel (any more). */
const REFUSALS = ["CHANNEL_PRIVATE", "CHANNEL_INVALID", "CHANNEL_PUBLIC_GROUP_NA", "USER_BANNED_IN_CHANNEL"]
/** Applied updates handed to ingestion in one source batch, at most (see `emitApplied`). */
const APPLIED_PER_BATCH = 256
/** Basic groups' deletions name message ids only; recent ids are kept to find their chat. */
const GROUP_MESSAGES_KEPT = 10_000

/** Re-reading stored messages for a too-long recovery: capped at 5 s so a recovered database is used within seconds. */
const rereadRetry = Schedule.min([Schedule.exponential("200 millis"), Schedule.spaced("5 seconds")]).pipe(Schedule.jittered)

type Reason = "start" | "poll" | "gap" | "overflow" | "too_long"

/** A configured channel; outlives connections. */
interface Channel {
  readonly reference: ChatReference
  chat: KnownChat | undefined
  label: string
  /** Committed: moved only by onCommitted. */
  committedPts: number | undefined
  committedTop: number
  dirty: boolean
  /** Accepted: handed to ingestion, maybe not yet committed. */
  sequence: PtsSequence<UpdateItem> | undefined
  acceptedTop: number
  inbox: Array<Sequenced<UpdateItem>>
  overflow: boolean
  tooLong: boolean
  readonly wake: Queue.Queue<void>
  /** Epoch ms when the channel was last confirmed up to date (the source's start before the first time). */
  confirmedAt: number
  confirmedOnce: boolean
  /** What the last warning said, so a stale or behind-while-recovering channel is warned about once per episode. */
  staleWarned: "stale" | "recovering" | undefined
  serverTimeoutSeconds: number
  refused: string | undefined
  /** While a difference chain or a too-long recovery runs: what it has done so far. */
  recovery: Recovery | undefined
}

/** A recovery under way, for /health/ready and the logs; `startedAt` in epoch ms. */
interface Recovery {
  readonly kind: "difference" | "too_long"
  readonly startedAt: number
  /** too_long: message ids (fromId, toId] are paged in, `atId` reached so far. */
  readonly fromId: number
  readonly toId: number
  atId: number
  /** Events fetched so far. */
  events: number
  /** difference: the pts reached so far. */
  pts: number
}

/** A routine poll hit (or would hit) a FLOOD_WAIT: it is skipped, so pushes keep flowing meanwhile. */
class PollDeferred extends Data.TaggedError("PollDeferred")<{}> {}

/** Telegram refuses the channel (one of REFUSALS): it is dropped, the others go on. */
class ChannelRefused extends Data.TaggedError("ChannelRefused")<{ readonly error: string }> {}

/** Share of a too-long gap's ids read; 1 when nothing is being recovered, 0 for a difference chain. */
const progressOf = (recovery: Recovery | undefined) =>
  recovery === undefined
    ? 1
    : recovery.kind === "too_long" && recovery.toId > recovery.fromId
    ? Math.min(1, (recovery.atId - recovery.fromId) / (recovery.toId - recovery.fromId))
    : 0

const recoveryStatus = (recovery: Recovery, now: number): ChannelRecovery => ({
  kind: recovery.kind,
  runningSeconds: Math.max(0, now - recovery.startedAt) / 1000,
  events: recovery.events,
  fromId: recovery.kind === "too_long" ? recovery.fromId : null,
  toId: recovery.kind === "too_long" ? recovery.toId : null,
  atId: recovery.kind === "too_long" ? recovery.atId : null,
  progress: recovery.kind === "too_long" ? progressOf(recovery) : null
})

const describeRecovery = (recovery: Recovery, now: number) =>
  recovery.kind === "too_long"
    ? `a too-long gap paged in from history for ${Math.round((now - recovery.startedAt) / 1000)} s, message ids up to ${recovery.atId} of (${recovery.fromId}, ${recovery.toId}] read (${Math.round(progressOf(recovery) * 100)}%), ${recovery.events} message(s) so far`
    : `a chain of differences for ${Math.round((now - recovery.startedAt) / 1000)} s, at pts ${recovery.pts}, ${recovery.events} event(s) so far`

/** The source for one account: `config` is `telegram.*` with that account's session file and chats. */
export const makeWith = (config: TelegramConfig) => Effect.gen(function*() {
  const registry = yield* ChannelRegistry
  const store = yield* UpdateStateStore
  const backfills = yield* BackfillRequests
  const stored = yield* readSession(config.sessionFile)
  const references = yield* Effect.forEach(config.channels, parseChatReference)
  const settings = clientSettings(config, stored)
  const context = yield* Effect.context<never>()
  const runFork = Effect.runForkWith(context)
  const clock = yield* Clock.Clock
  /** Wall-clock milliseconds from Clock, also for GramJS's callbacks, which run outside any fiber. */
  const nowMillis = () => clock.currentTimeMillisUnsafe()

  const queue = yield* Queue.bounded<SourceBatch, TelegramFatal | Cause.Done>(config.batchQueueCapacity)
  const state = yield* Ref.make<ConnectionState>("connecting")
  const differences = yield* Semaphore.make(config.differenceConcurrency)
  const loaded = yield* store.load.pipe(Effect.orDie)
  const storedPts = new Map(loaded.channels.map((c) => [c.channelId, c]))
  const floodUntil = new Map(loaded.floodWaits.map((w) => [`${w.method}|${w.chatId}`, w.until]))
  let committedAccount: AccountUpdateState | undefined = loaded.account
  let accountDirty = false
  let acceptedAccount: AccountUpdateState | undefined = loaded.account
  const groupMessageChats = new Map<number, number>()

  const channels: Array<Channel> = []
  for (const reference of references) {
    channels.push({
      reference,
      chat: undefined,
      label: reference.text,
      committedPts: undefined,
      committedTop: 0,
      dirty: false,
      sequence: undefined,
      acceptedTop: 0,
      inbox: [],
      overflow: false,
      tooLong: false,
      wake: yield* Queue.sliding<void>(1),
      confirmedAt: nowMillis(),
      confirmedOnce: false,
      staleWarned: undefined,
      serverTimeoutSeconds: 0,
      refused: undefined,
      recovery: undefined
    })
  }
  const byId = new Map<number, Channel>()

  if (references.length === 0) {
    yield* Effect.logWarning("telegram.channels is empty: the gateway is connected to Telegram but listens to no chat")
  }

  const setState = (next: ConnectionState) =>
    Ref.set(state, next).pipe(Effect.andThen(Metric.update(Metrics.telegramConnected, next === "connected" ? 1 : 0)))

  const perChannel = <M extends Metric.Metric<number, unknown>>(metric: M, channel: Channel, extra: Record<string, string> = {}) =>
    metric.pipe(Metric.withAttributes({ channel: String(channel.chat?.channelId ?? channel.label), ...extra })) as M

  const malformed = (what: string, cause: unknown) =>
    runFork(
      Effect.logWarning(`skipped a malformed ${what} from Telegram: ${cause instanceof Error ? cause.message : String(cause)}`).pipe(
        Effect.andThen(Metric.update(Metrics.telegramMalformedUpdates, 1))
      )
    )

  const isWanted = (chatId: number) => byId.has(chatId)
  const groupOf = (messageId: number) => groupMessageChats.get(messageId)

  /** Events of one update; a payload that cannot be mapped yields none (pts still moves), counted. */
  const itemOf = (update: unknown, directory: ReturnType<typeof makeDirectory>, receivedAt: number): UpdateItem => {
    try {
      const item = eventsOf(update, directory, receivedAt, isWanted, groupOf)
      for (const event of item.events) {
        if (event._tag !== "MessageDeleted" && byId.get(event.message.channelId)?.chat?.kind === "group") {
          groupMessageChats.set(event.message.messageId, event.message.channelId)
          if (groupMessageChats.size > GROUP_MESSAGES_KEPT) {
            const oldest = groupMessageChats.keys().next()
            if (oldest.done !== true) groupMessageChats.delete(oldest.value)
          }
        }
      }
      return item
    } catch (cause) {
      malformed(`update (${(update as { className?: string })?.className ?? typeof update})`, cause)
      return { events: [], topMessageId: 0 }
    }
  }

  /** The Telegram date of what an event carries, for the date-to-commit histogram. */
  const telegramDateMs = (event: MessageEvent) =>
    event._tag === "MessageDeleted" ? undefined : (event.message.editDate ?? event.message.date) * 1000

  /** Hands events to ingestion; the channel's committed state moves to (pts, top) once they are committed. */
  const emit = (channel: Channel, events: ReadonlyArray<MessageEvent>, pts: number | undefined, top: number) =>
    Queue.offer(queue, {
      events,
      onCommitted: Effect.suspend(() => {
        if (pts !== undefined && pts > (channel.committedPts ?? 0)) {
          channel.committedPts = pts
          channel.dirty = true
        }
        if (top > channel.committedTop) {
          channel.committedTop = top
          channel.dirty = true
        }
        const now = nowMillis()
        return Effect.forEach(events, (event) => {
          const date = telegramDateMs(event)
          return date === undefined ? Effect.void : Metric.update(Metrics.telegramCommitLatency, Math.max(0, now - date) / 1000)
        }, { discard: true })
      })
    }).pipe(Effect.asVoid)

  /**
   * Hands applied updates to ingestion as source batches of up to
   * APPLIED_PER_BATCH updates each: the pushes a worker finds waiting go
   * together, so a busy gateway pays the per-batch work (the source queue,
   * the commit tracker, `onCommitted`) once per drain, not once per update.
   * A batch's `onCommitted` moves the channel to its last update's pts, which
   * is what the updates' own callbacks, run in order, would have left.
   */
  const emitApplied = (channel: Channel, applied: ReadonlyArray<Sequenced<UpdateItem>>) =>
    Effect.gen(function*() {
      for (let start = 0; start < applied.length; start += APPLIED_PER_BATCH) {
        const events: Array<MessageEvent> = []
        let pts = 0
        let top = 0
        for (const update of applied.slice(start, start + APPLIED_PER_BATCH)) {
          for (const event of update.item.events) events.push(event)
          pts = Math.max(pts, update.pts)
          top = Math.max(top, update.item.topMessageId)
        }
        channel.acceptedTop = Math.max(channel.acceptedTop, top)
        yield* emit(channel, events, pts, top)
      }
    })

  const recovered = (channel: Channel, via: "difference" | "too_long" | "history", count: number) =>
    count === 0 ? Effect.void : Metric.update(perChannel(Metrics.missedMessagesRecovered, channel, { via }), count)

  // ---- pushed updates (synchronous, in arrival order) ----

  const onUpdate = (update: unknown) => {
    const sequencing = sequencingOf(update)
    if (sequencing._tag === "Channel") {
      const channel = byId.get(sequencing.channelId)
      if (channel === undefined || channel.refused !== undefined) return
      if (channel.inbox.length >= config.updateBuffer) {
        channel.overflow = true
        runFork(Metric.update(Metrics.telegramUpdatesDropped, 1))
      } else {
        const item = itemOf(update, directoryOfPush(update), nowMillis())
        channel.inbox.push({ pts: sequencing.pts, ptsCount: sequencing.ptsCount, item })
      }
      Queue.offerUnsafe(channel.wake, undefined)
    } else if (sequencing._tag === "ChannelTooLong") {
      const channel = byId.get(sequencing.channelId)
      if (channel === undefined) return
      channel.tooLong = true
      Queue.offerUnsafe(channel.wake, undefined)
    } else if (sequencing._tag === "Common" || update instanceof Api.UpdatesTooLong) {
      // The common sequence (basic groups): a gap or too-long is fetched with getDifference.
      commonPushes.push(sequencing._tag === "Common" ? sequencing : "too_long")
      Queue.offerUnsafe(commonWake, undefined)
    }
  }
  const commonPushes: Array<Extract<ReturnType<typeof sequencingOf>, { _tag: "Common" }> | "too_long"> = []
  const commonWake = yield* Queue.sliding<void>(1)

  // ---- calls: flood waits per method and chat, refusals ----

  const floodKey = (method: string, chatId: number) => `${method}|${chatId}`

  /**
   * Calls until it succeeds: a FLOOD_WAIT longer than the client sleeps
   * through pauses this method for this chat only (persisted, so a restart
   * waits too); a refusal fails with ChannelRefused; another call error is
   * retried after a short pause. Fatal errors go up to end the connection.
   */
  const call = <A>(
    method: string,
    chatId: number,
    what: string,
    effect: Effect.Effect<A, CallError>
  ): Effect.Effect<A, TelegramFatal | ChannelRefused> =>
    callOrDefer(method, chatId, what, effect, false).pipe(
      Effect.catchTag("PollDeferred", () => Effect.die(new Error("unreachable: only polls are deferred")))
    )

  /** `call`, but a poll (`deferrable`) gives up on a FLOOD_WAIT instead of waiting it out. */
  const callOrDefer = <A>(
    method: string,
    chatId: number,
    what: string,
    effect: Effect.Effect<A, CallError>,
    deferrable: boolean
  ): Effect.Effect<A, TelegramFatal | ChannelRefused | PollDeferred> =>
    Effect.gen(function*() {
      while (true) {
        const until = floodUntil.get(floodKey(method, chatId)) ?? 0
        const waitMs = until - nowMillis()
        if (waitMs > 0 && deferrable) return yield* Effect.fail(new PollDeferred())
        if (waitMs > 0) yield* Effect.sleep(Duration.millis(waitMs))
        const outcome = yield* effect.pipe(Effect.result)
        if (outcome._tag === "Success") return outcome.success
        const error = outcome.failure
        if (error._tag === "TelegramFatal") return yield* Effect.fail(error)
        if (error._tag === "TelegramFloodWait") {
          const record = { method, chatId, until: nowMillis() + error.seconds * 1000 }
          floodUntil.set(floodKey(method, chatId), record.until)
          yield* Effect.logWarning(`${what}: ${error.message}; only this call waits (until ${new Date(record.until).toISOString()}), recorded for restarts`)
          yield* store.saveFloodWait(record).pipe(
            Effect.catch((saveError) => Effect.logWarning(`flood wait not recorded: ${saveError.message}`))
          )
          if (deferrable) return yield* Effect.fail(new PollDeferred())
          continue
        }
        const refusal = REFUSALS.find((name) => error.detail.includes(name))
        if (refusal !== undefined) return yield* Effect.fail(new ChannelRefused({ error: refusal }))
        yield* Effect.logWarning(`${what}: ${error.message}; trying again in 1 s`)
        yield* Effect.sleep("1 second")
      }
    })

  // ---- channel engine ----

  const inputChannel = (chat: KnownChat) =>
    new Api.InputChannel({ channelId: helpers.returnBigInt(chat.channelId), accessHash: helpers.returnBigInt(chat.accessHash ?? "0") })

  const pollEvery = (channel: Channel) =>
    Math.max(
      Duration.toMillis(config.pollInterval),
      channel.serverTimeoutSeconds * 1000,
      (channels.length / config.maxPollRate) * 1000
    )

  const confirmed = (channel: Channel) =>
    Effect.sync(() => {
      channel.confirmedAt = nowMillis()
      channel.confirmedOnce = true
      channel.staleWarned = undefined
    })

  /** The newest message of a chat's history sent before `offsetDate` (epoch seconds; 0 for the newest of all). */
  const historyHead = (gram: GramJs, chat: KnownChat, description: string, offsetDate: number) =>
    call(
      "messages.GetHistory",
      chat.channelId,
      description,
      gram.invoke(
        new Api.messages.GetHistory({
          peer: inputPeerOf(chat),
          offsetId: 0,
          offsetDate,
          addOffset: 0,
          limit: 1,
          maxId: 0,
          minId: 0,
          hash: helpers.returnBigInt(0)
        })
      )
    )

  /** The newest pts and message id, for a channel read for the first time or whose stored pts Telegram no longer knows. */
  const currentPosition = (gram: GramJs, channel: Channel, chat: KnownChat) =>
    historyHead(gram, chat, `reading where ${channel.label} is`, 0).pipe(
      Effect.map((result) => ({
        pts: "pts" in result && typeof result.pts === "number" ? result.pts : 1,
        top: result instanceof Api.messages.MessagesNotModified ? 0 : Math.max(0, ...result.messages.map((m) => m.id))
      }))
    )

  /**
   * A read of stored state the engine cannot go on without: retried (capped
   * backoff, for as long as PostgreSQL is away: the writer cannot commit
   * meanwhile either), never skipped, so the pts does not move past what it
   * decides. Warned once per outage, every failure counted.
   */
  const untilPostgresAnswers = <A>(read: Effect.Effect<A, UpdateStateError>, what: string) => {
    let failures = 0
    return read.pipe(
      Effect.tapError((error) => {
        failures += 1
        return Metric.update(Metrics.telegramStateReadFailures, 1).pipe(
          Effect.andThen(
            failures === 1
              ? Effect.logWarning(`${what} failed, retrying until PostgreSQL answers: ${error.message}`)
              : Effect.void
          )
        )
      }),
      Effect.retry(rereadRetry),
      Effect.tap(() => failures > 0 ? Effect.logInfo(`${what} succeeded after ${failures} failed attempt(s)`) : Effect.void)
    )
  }

  /**
   * What PostgreSQL holds of the re-read window. Without it the window's
   * edits and deletions cannot be told apart.
   */
  const storedWindow = (channel: Channel, channelId: number, low: number, from: number) =>
    untilPostgresAnswers(
      store.storedMessages(channelId, low, from),
      `${channel.label}: reading the stored messages of the re-read window`
    )

  /**
   * A chat's history in (after, upTo], oldest first, each page's messages as
   * events handed to `onPage` before the next page is asked for (so the
   * ingestion queue paces it): too-long recovery and backfill
   * (src/layers/GramJsBackfill.ts) share it. Calls go through `call`, so a
   * FLOOD_WAIT pauses only messages.getHistory for this chat.
   */
  const historyEvents = <E>(
    gram: GramJs,
    chat: KnownChat,
    label: string,
    after: number,
    upTo: number,
    onPage: (events: ReadonlyArray<MessageEvent>, newestId: number) => Effect.Effect<void, E>
  ) => {
    const peer = inputPeerOf(chat)
    const page = (cursor: number) =>
      call("messages.GetHistory", chat.channelId, `reading ${label}'s history`, historyPageAbove(gram.invoke, peer, cursor, upTo))
    return forEachHistoryPage(page, after, upTo, (history, newest) => {
      const receivedAt = nowMillis()
      const events = history.messages.flatMap((message) => {
        try {
          return [messageEvent(message, chat.channelId, false, history.directory, receivedAt)]
        } catch (cause) {
          malformed("message from history", cause)
          return []
        }
      })
      return onPage(events, newest)
    })
  }

  /** The newest message id sent before `date` (0 when none), or the newest of all without a date. */
  const newestBefore = (gram: GramJs, chat: KnownChat, label: string, date: Date | null) =>
    historyHead(
      gram,
      chat,
      `finding where ${label}'s history ${date === null ? "ends" : `reaches ${date.toISOString()}`}`,
      date === null ? 0 : Math.floor(date.getTime() / 1000)
    ).pipe(
      Effect.map((result) =>
        result instanceof Api.messages.MessagesNotModified ? 0 : Math.max(0, ...result.messages.map((m) => m.id))
      )
    )

  const setRecovery = (channel: Channel, recovery: Recovery | undefined) =>
    Effect.suspend(() => {
      channel.recovery = recovery
      return Metric.update(perChannel(Metrics.telegramChannelRecovering, channel), recovery === undefined ? 0 : 1).pipe(
        Effect.andThen(Metric.update(perChannel(Metrics.telegramRecoveryProgress, channel), progressOf(recovery)))
      )
    })

  /**
   * Too long: the history between the newest message read and `top` (all of
   * it, paged), the re-read window for edits and deletions, then pts jumps.
   */
  const recoverByHistory = (gram: GramJs, channel: Channel, chat: KnownChat, sequence: PtsSequence<UpdateItem>, pts: number, top: number) =>
    Effect.gen(function*() {
      const from = channel.acceptedTop
      const recovery: Recovery = { kind: "too_long", startedAt: nowMillis(), fromId: from, toId: top, atId: from, events: 0, pts: sequence.pts }
      yield* setRecovery(channel, recovery)
      let gapMessages = 0
      yield* historyEvents(gram, chat, channel.label, from, top, (events, newest) =>
        Effect.gen(function*() {
          gapMessages += events.length
          recovery.atId = newest
          recovery.events += events.length
          channel.acceptedTop = Math.max(channel.acceptedTop, newest)
          yield* Metric.update(perChannel(Metrics.telegramRecoveryProgress, channel), progressOf(recovery))
          yield* emit(channel, events, undefined, newest)
        }))
      recovery.atId = top
      yield* recovered(channel, "too_long", gapMessages)

      // The re-read window: edits and deletions of what was stored before the gap.
      let windowEvents = 0
      if (from > 0) {
        const low = Math.max(1, from - config.rereadWindow + 1)
        const storedMessages = yield* storedWindow(channel, chat.channelId, low, from)
        const page = (after: number, upTo: number) =>
          call("messages.GetHistory", chat.channelId, `re-reading ${channel.label}'s history`, historyPageAbove(gram.invoke, inputPeerOf(chat), after, upTo))
        const known = new Map(storedMessages.filter((m) => !m.deleted).map((m) => [m.messageId, m]))
        const seen = new Set<number>()
        const events: Array<MessageEvent> = []
        yield* forEachHistoryPage((after) => page(after, from), low - 1, from, (history) =>
          Effect.sync(() => {
            const receivedAt = nowMillis()
            for (const message of history.messages) {
              seen.add(message.id)
              const storedVersion = known.get(message.id)
              if (storedVersion !== undefined && (message.editDate ?? 0) > (storedVersion.editDate ?? 0)) {
                try {
                  events.push(messageEvent(message, chat.channelId, true, history.directory, receivedAt))
                } catch (cause) {
                  malformed("message from history", cause)
                }
              }
            }
          }))
        const receivedAt = nowMillis()
        for (const messageId of known.keys()) {
          if (!seen.has(messageId)) events.push(deletedEvent(chat.channelId, messageId, receivedAt))
        }
        windowEvents = events.length
        if (events.length > 0) yield* emit(channel, events, undefined, 0)
      }
      yield* recovered(channel, "history", windowEvents)
      yield* Effect.logInfo(
        `${channel.label}: too long a gap recovered through history: ${gapMessages} message(s) in (${from}, ${top}], ${windowEvents} edit(s)/deletion(s) in the last ${config.rereadWindow} stored`
      )
      yield* emit(channel, [], pts, channel.acceptedTop)
      yield* emitApplied(channel, sequence.advanceTo(pts))
    })

  /** getChannelDifference from the accepted pts until `final`. */
  const difference = (gram: GramJs, channel: Channel, chat: KnownChat, sequence: PtsSequence<UpdateItem>, reason: Reason) =>
    differences.withPermits(1)(Effect.gen(function*() {
      yield* Metric.update(Metrics.telegramDifferenceCalls.pipe(Metric.withAttributes({ reason })), 1)
      let first = true
      while (true) {
        const result = yield* callOrDefer(
          "updates.GetChannelDifference",
          chat.channelId,
          `fetching ${channel.label}'s difference`,
          gram.invoke(
            new Api.updates.GetChannelDifference({
              channel: inputChannel(chat),
              filter: new Api.ChannelMessagesFilterEmpty(),
              pts: sequence.pts,
              limit: DIFFERENCE_LIMIT
            })
          ),
          reason === "poll" && first
        )
        first = false
        channel.serverTimeoutSeconds = result.timeout ?? 0
        if (result instanceof Api.updates.ChannelDifferenceEmpty) {
          const moved = result.pts > sequence.pts
          const applied = sequence.advanceTo(result.pts)
          if (moved) yield* emit(channel, [], result.pts, 0)
          yield* emitApplied(channel, applied)
          break
        }
        if (result instanceof Api.updates.ChannelDifferenceTooLong) {
          yield* Metric.update(perChannel(Metrics.telegramGaps, channel, { kind: "too_long" }), 1)
          const dialog = result.dialog
          const pts = dialog instanceof Api.Dialog && dialog.pts !== undefined ? dialog.pts : sequence.pts
          const top = dialog instanceof Api.Dialog ? dialog.topMessage : Math.max(0, ...result.messages.map((m) => m.id))
          yield* Effect.logWarning(`${channel.label}: the stored pts ${sequence.pts} is too old for a difference; recovering through history up to message ${top}`)
          yield* recoverByHistory(gram, channel, chat, sequence, pts, top)
          if (result.final !== false) break
          continue
        }
        const receivedAt = nowMillis()
        const directory = makeDirectory(result.users, result.chats)
        const items = [
          ...result.newMessages.map((message) => itemOf(new Api.UpdateNewChannelMessage({ message, pts: 0, ptsCount: 0 }), directory, receivedAt)),
          ...result.otherUpdates.map((update) => itemOf(update, directory, receivedAt))
        ]
        const events = items.flatMap((item) => item.events)
        const top = Math.max(0, ...items.map((item) => item.topMessageId))
        channel.acceptedTop = Math.max(channel.acceptedTop, top)
        const applied = sequence.advanceTo(result.pts)
        yield* emit(channel, events, result.pts, top)
        yield* recovered(channel, "difference", events.length)
        yield* emitApplied(channel, applied)
        if (result.final === true) break
        // A chain of pages: the channel is behind until it ends.
        if (channel.recovery === undefined) {
          yield* setRecovery(channel, { kind: "difference", startedAt: nowMillis(), fromId: 0, toId: 0, atId: 0, events: 0, pts: result.pts })
        }
        channel.recovery!.pts = result.pts
        channel.recovery!.events += events.length
      }
      yield* confirmed(channel)
    }).pipe(Effect.ensuring(Effect.suspend(() => channel.recovery === undefined ? Effect.void : setRecovery(channel, undefined)))))

  /** Sequences what the inbox holds; returns whether pushes were dropped for lack of room. */
  const drainInbox = (channel: Channel, sequence: PtsSequence<UpdateItem>) =>
    Effect.gen(function*() {
      const pushed = channel.inbox
      channel.inbox = []
      const applied: Array<Sequenced<UpdateItem>> = []
      for (const update of pushed) {
        const { apply, overflow } = sequence.offer(update)
        if (overflow) channel.overflow = true
        for (const item of apply) applied.push(item)
      }
      yield* emitApplied(channel, applied)
      if (pushed.length > 0 && !sequence.gap) yield* confirmed(channel)
    })

  const takeWake = (channel: Channel, millis: number) =>
    Queue.take(channel.wake).pipe(Effect.timeoutOption(Duration.millis(Math.max(0, millis))))

  const startingPosition = (gram: GramJs, channel: Channel, chat: KnownChat) =>
    Effect.gen(function*() {
      if (channel.sequence !== undefined) return channel.sequence
      const known = storedPts.get(chat.channelId)
      if (known !== undefined) {
        channel.committedPts = known.pts
        channel.committedTop = known.topMessageId
        channel.acceptedTop = known.topMessageId
        channel.sequence = new PtsSequence(known.pts, config.updateBuffer)
        return channel.sequence
      }
      // Never read: start from now (history before it is a backfill's job).
      const position = yield* currentPosition(gram, channel, chat)
      channel.acceptedTop = position.top
      channel.sequence = new PtsSequence(position.pts, config.updateBuffer)
      yield* emit(channel, [], position.pts, position.top)
      // Stored at once, not at the next flush: a crash before it would start
      // the channel from "now" again and skip what was posted in between.
      yield* store.save({ channels: [{ channelId: chat.channelId, pts: position.pts, topMessageId: position.top }], account: undefined }).pipe(
        Effect.catchTag("UpdateStateError", (error) =>
          Metric.update(Metrics.telegramStateSaveFailures, 1).pipe(
            Effect.andThen(Effect.logWarning(`${channel.label}: first read's position not saved yet, the next flush will: ${error.message}`))
          ))
      )
      yield* Effect.logInfo(`${channel.label}: first read, starting at pts ${position.pts} (message ${position.top})`)
      return channel.sequence
    })

  /** One channel for one connection: catch up, then sequence pushes, fill gaps, poll. */
  const channelWorker = (gram: GramJs, channel: Channel, known: ReadonlyArray<KnownChat>) =>
    Effect.gen(function*() {
      // Bounded like differences: a start with hundreds of new channels does not burst resolveUsername.
      const chat = yield* differences.withPermits(1)(call(
        "contacts.ResolveUsername",
        0,
        `resolving ${channel.reference.text}`,
        resolveChat(gram, channel.reference, known).pipe(Effect.provideService(ChannelRegistry, registry))
      ))
      channel.chat = chat
      channel.label = chat.username !== null ? `@${chat.username}` : chat.title ?? String(chat.channelId)
      byId.set(chat.channelId, channel)
      if (chat.kind === "group") return // basic groups live in the common sequence
      const sequence = yield* startingPosition(gram, channel, chat)
      yield* drainInbox(channel, sequence)
      yield* difference(gram, channel, chat, sequence, "start")
      channel.refused = undefined
      yield* Metric.update(perChannel(Metrics.telegramChannelUnavailable, channel), 0)
      let nextPollAt = nowMillis() + (yield* Random.nextBetween(0, pollEvery(channel)))
      while (true) {
        const woke = yield* takeWake(channel, nextPollAt - nowMillis())
        yield* drainInbox(channel, sequence)
        let reason: Reason | undefined
        if (channel.tooLong) {
          channel.tooLong = false
          reason = "too_long"
        } else if (channel.overflow) {
          channel.overflow = false
          reason = "overflow"
          yield* Metric.update(perChannel(Metrics.telegramGaps, channel, { kind: "overflow" }), 1)
        } else if (sequence.gap) {
          const holdUntil = nowMillis() + Duration.toMillis(config.gapHold)
          while (sequence.gap && nowMillis() < holdUntil && !channel.overflow) {
            yield* takeWake(channel, holdUntil - nowMillis())
            yield* drainInbox(channel, sequence)
          }
          if (sequence.gap || channel.overflow) {
            channel.overflow = false
            reason = "gap"
            yield* Metric.update(perChannel(Metrics.telegramGaps, channel, { kind: "push" }), 1)
          }
        } else if (Option.isNone(woke) && nowMillis() >= nextPollAt) {
          reason = "poll"
        }
        if (reason !== undefined) {
          yield* difference(gram, channel, chat, sequence, reason).pipe(Effect.catchTag("PollDeferred", () => Effect.void))
        }
        if (reason === "poll" || nowMillis() >= nextPollAt) {
          const flooded = floodUntil.get(floodKey("updates.GetChannelDifference", chat.channelId)) ?? 0
          nextPollAt = Math.max(nowMillis() + pollEvery(channel), flooded)
        }
      }
    }).pipe(
      Effect.catchIf(
        (error): error is ChannelRefused => error instanceof ChannelRefused,
        (refusal) =>
          Effect.gen(function*() {
            channel.refused = refusal.error
            yield* Metric.update(perChannel(Metrics.telegramChannelUnavailable, channel), 1)
            yield* Effect.logError(
              `${channel.label}: Telegram refuses access (${refusal.error}); this channel is dropped until the next reconnect or restart, the others go on. Check that the account is still a member, or remove it from telegram.channels`
            )
          })
      ),
      Effect.annotateLogs("chat", channel.reference.text)
    )

  // ---- the common sequence (account pts, qts, date, seq) ----

  const commitAccount = (next: AccountUpdateState) =>
    Effect.sync(() => {
      if (committedAccount === undefined || next.pts >= committedAccount.pts) {
        committedAccount = next
        accountDirty = true
      }
    })

  /**
   * A basic group's deletion names message ids only, found through the
   * recently seen ones (`groupMessageChats`); ids not seen since the start
   * (stored before a restart, or long ago) are looked up in PostgreSQL
   * first, retried while it is away, so the deletion
   * is never dropped while the account's pts moves past it.
   */
  const learnDeletedGroupMessages = (updates: ReadonlyArray<unknown>) => {
    const unknown = updates.flatMap((update) =>
      update instanceof Api.UpdateDeleteMessages ? update.messages.filter((id) => !groupMessageChats.has(id)) : []
    )
    const groups = channels.flatMap((channel) => channel.chat?.kind === "group" ? [channel.chat.channelId] : [])
    if (unknown.length === 0 || groups.length === 0) return Effect.void
    return untilPostgresAnswers(store.chatsOfMessages(groups, unknown), "finding the basic groups of deleted messages").pipe(
      Effect.map((found) => {
        for (const { chatId, messageId } of found) groupMessageChats.set(messageId, chatId)
      })
    )
  }

  const groupEvents = (updates: ReadonlyArray<unknown>, directory: ReturnType<typeof makeDirectory>) =>
    learnDeletedGroupMessages(updates).pipe(
      Effect.map(() => {
        const receivedAt = nowMillis()
        return updates.flatMap((update) => itemOf(update, directory, receivedAt).events)
      })
    )

  /** getDifference from the accepted account state until it is complete; channel updates in it go to their channels. */
  const accountDifference = (gram: GramJs) =>
    Effect.gen(function*() {
      if (acceptedAccount === undefined) {
        const current = yield* call("updates.GetState", 0, "reading the account's update state", gram.invoke(new Api.updates.GetState()))
        acceptedAccount = { pts: current.pts, qts: current.qts, date: current.date, seq: current.seq }
        const next = acceptedAccount
        yield* Queue.offer(queue, { events: [], onCommitted: commitAccount(next) })
        return
      }
      yield* Metric.update(Metrics.telegramDifferenceCalls.pipe(Metric.withAttributes({ reason: "account" })), 1)
      while (acceptedAccount !== undefined) {
        const from: AccountUpdateState = acceptedAccount
        const result = yield* call(
          "updates.GetDifference",
          0,
          "fetching the account's difference",
          gram.invoke(new Api.updates.GetDifference({ pts: from.pts, date: from.date, qts: from.qts }))
        )
        if (result instanceof Api.updates.DifferenceEmpty) {
          acceptedAccount = { ...from, date: result.date, seq: result.seq }
        } else if (result instanceof Api.updates.DifferenceTooLong) {
          acceptedAccount = { ...from, pts: result.pts }
        } else {
          const next = result instanceof Api.updates.DifferenceSlice ? result.intermediateState : result.state
          const directory = makeDirectory(result.users, result.chats)
          const events = yield* groupEvents([
            ...result.newMessages.map((message) => new Api.UpdateNewMessage({ message, pts: 0, ptsCount: 0 })),
            ...result.otherUpdates
          ], directory)
          for (const update of result.otherUpdates) {
            const sequencing = sequencingOf(update)
            if (sequencing._tag === "ChannelTooLong") {
              const channel = byId.get(sequencing.channelId)
              if (channel !== undefined) {
                channel.tooLong = true
                Queue.offerUnsafe(channel.wake, undefined)
              }
            }
          }
          acceptedAccount = { pts: next.pts, qts: next.qts, date: next.date, seq: next.seq }
          const state = acceptedAccount
          yield* Queue.offer(queue, { events, onCommitted: commitAccount(state) })
          if (result instanceof Api.updates.DifferenceSlice) continue
          break
        }
        const state = acceptedAccount
        yield* Queue.offer(queue, { events: [], onCommitted: commitAccount(state) })
        break
      }
    })

  /**
   * The common sequence's updates name a basic group only through its
   * messages, and one of a group not resolved yet would be dropped while the
   * account's pts moves past it: nothing is applied before every configured
   * chat that may be a basic group (a numeric id; groups have no username)
   * is resolved or refused.
   */
  const groupsResolved = Effect.gen(function*() {
    const pending = () =>
      channels.some((channel) =>
        channel.reference._tag === "Id" && channel.reference.kind !== "channel" && channel.chat === undefined &&
        channel.refused === undefined
      )
    while (pending()) yield* Effect.sleep("100 millis")
  })

  const accountWorker = (gram: GramJs) =>
    Effect.gen(function*() {
      yield* groupsResolved
      yield* accountDifference(gram)
      while (true) {
        yield* Queue.take(commonWake)
        const pushed = commonPushes.splice(0)
        let fetch = false
        for (const push of pushed) {
          if (push === "too_long" || acceptedAccount === undefined) {
            fetch = true
            continue
          }
          if (push.pts <= acceptedAccount.pts) continue
          if (push.pts - push.ptsCount === acceptedAccount.pts) {
            acceptedAccount = { ...acceptedAccount, pts: push.pts }
            const state = acceptedAccount
            const events = yield* groupEvents([push.update], directoryOfPush(push.update))
            yield* Queue.offer(queue, { events, onCommitted: commitAccount(state) })
          } else {
            fetch = true
          }
        }
        if (fetch) {
          yield* Effect.sleep(config.gapHold)
          yield* accountDifference(gram)
        }
      }
    }).pipe(
      Effect.catchIf((error): error is ChannelRefused => error instanceof ChannelRefused, (refusal) =>
        Effect.logError(`the account's update state cannot be read (${refusal.error})`))
    )

  // ---- persistence, freshness ----

  const flushState = Effect.suspend(() => {
    const dirty = channels.filter((channel) => channel.dirty && channel.chat !== undefined && channel.committedPts !== undefined)
    const account = accountDirty ? committedAccount : undefined
    if (dirty.length === 0 && account === undefined) return Effect.void
    for (const channel of dirty) channel.dirty = false
    accountDirty = false
    return store.save({
      channels: dirty.map((channel) => ({
        channelId: channel.chat!.channelId,
        pts: channel.committedPts!,
        topMessageId: channel.committedTop
      })),
      account
    }).pipe(
      Effect.tap(() =>
        Effect.forEach(dirty, (channel) => Metric.update(perChannel(Metrics.telegramChannelPts, channel), channel.committedPts ?? 0), {
          discard: true
        })
      ),
      Effect.catchTag("UpdateStateError", (error) =>
        Effect.sync(() => {
          for (const channel of dirty) channel.dirty = true
          if (account !== undefined) accountDirty = true
        }).pipe(
          Effect.andThen(Metric.update(Metrics.telegramStateSaveFailures, 1)),
          Effect.andThen(Effect.logWarning(`update state not saved, will retry: ${error.message}`))
        ))
    )
  })

  /**
   * Freshness is the time since the channel was last confirmed up to date,
   * recovering or not: a long recovery is behind, and says so. What changes
   * while recovering is what is said: the warning names the recovery and its
   * progress instead of calling the channel stale, and `telegram_channel_recovering`
   * tells the two apart.
   */
  const watchFreshness = Effect.suspend(() => {
    const now = nowMillis()
    return Effect.forEach(channels, (channel) => {
      if (channel.chat === undefined || channel.refused !== undefined) return Effect.void
      const age = Math.max(0, now - channel.confirmedAt) / 1000
      const behind = age > Duration.toSeconds(config.staleAfter)
      const as = !behind ? undefined : channel.recovery !== undefined ? "recovering" : "stale"
      const warn = as !== undefined && channel.staleWarned !== as
      if (warn) channel.staleWarned = as
      const limit = `telegram.staleAfter is ${Duration.format(config.staleAfter)}`
      return Metric.update(perChannel(Metrics.telegramFreshness, channel), age).pipe(
        Effect.andThen(
          !warn
            ? Effect.void
            : as === "recovering"
            ? Effect.logWarning(`${channel.label} is ${Math.round(age)} s behind while recovering what it missed: ${describeRecovery(channel.recovery!, now)} (${limit})`)
            : Effect.logWarning(`${channel.label} is stale: not confirmed up to date with Telegram for ${Math.round(age)} s (${limit})`)
        )
      )
    }, { discard: true })
  })

  const channelStatus: Effect.Effect<ReadonlyArray<ChannelStatus>> = Effect.sync(() => {
    const now = nowMillis()
    return channels.map((channel): ChannelStatus => {
      const freshnessSeconds = Math.max(0, now - channel.confirmedAt) / 1000
      const stale = freshnessSeconds > Duration.toSeconds(config.staleAfter)
      const recovery = channel.recovery === undefined ? null : recoveryStatus(channel.recovery, now)
      return {
        channel: channel.label,
        channelId: channel.chat?.channelId ?? null,
        pts: channel.committedPts ?? null,
        freshnessSeconds,
        stale,
        state: channel.refused !== undefined
          ? "refused"
          : recovery !== null
          ? "recovering"
          : stale
          ? "stale"
          : channel.confirmedOnce
          ? "live"
          : "starting",
        recovery,
        refused: channel.refused ?? null
      }
    })
  })

  // ---- backfill requests (src/layers/GramJsBackfill.ts) ----

  const backfillWorker = (gram: GramJs) =>
    runBackfills({
      requests: backfills,
      pollInterval: config.backfillPollInterval,
      target: (text) =>
        Effect.gen(function*() {
          const channel = channels.find((candidate) => candidate.reference.text === text)
          if (channel === undefined) return { _tag: "Unknown" } as const
          // The channel's worker resolves it at the start of each connection.
          while (channel.chat === undefined && channel.refused === undefined) yield* Effect.sleep("200 millis")
          return channel.refused !== undefined || channel.chat === undefined
            ? { _tag: "Refused", label: channel.label, error: channel.refused ?? "unresolved" } as const
            : { _tag: "Known", label: channel.label, chat: channel.chat } as const
        }),
      newestBefore: (chat, label, date) => newestBefore(gram, chat, label, date),
      history: (chat, label, after, upTo, onPage) => historyEvents(gram, chat, label, after, upTo, onPage),
      offer: (batch) => Queue.offer(queue, batch).pipe(Effect.asVoid)
    }).pipe(Effect.annotateLogs("component", "backfill"))

  // ---- connections ----

  /** One connection, from connect to drop. Succeeds when the connection is lost. */
  const connection = (onConnected: Effect.Effect<void>) =>
    Effect.scoped(
      Effect.gen(function*() {
        const gram = yield* makeGramJs(settings, stored.session)
        yield* gram.connect
        yield* gram.whoAmI
        gram.client.addEventHandler(onUpdate, new Raw({}))
        yield* setState("connected")
        yield* onConnected
        yield* Effect.logInfo(`connected to Telegram DC ${settings.dcId} at ${settings.dcAddress}:${settings.dcPort}`)
        const known = yield* registry.list.pipe(Effect.orDie)
        const workers = Effect.all([
          accountWorker(gram),
          Effect.forEach(channels, (channel) => channelWorker(gram, channel, known), { concurrency: "unbounded", discard: true }),
          backfillWorker(gram)
        ], { concurrency: "unbounded", discard: true }).pipe(Effect.andThen(Effect.never))
        yield* Effect.raceFirst(gram.lost, workers)
        yield* Effect.logWarning("connection to Telegram lost")
      })
    )

  /** Keeps a connection up until a fatal error; the delay doubles from the base to the max, jittered. */
  const supervise = Effect.gen(function*() {
    let failures = 0
    let everConnected = false
    const onConnected = Effect.suspend(() => {
      failures = 0
      const reconnected = everConnected
      everConnected = true
      return reconnected ? Metric.update(Metrics.telegramReconnects, 1) : Effect.void
    })
    while (true) {
      yield* setState("connecting")
      const failure = yield* connection(onConnected).pipe(
        Effect.as(undefined),
        Effect.catch((error) => error._tag === "TelegramFatal" ? Effect.fail(error) : Effect.succeed(error))
      )
      yield* setState("disconnected")
      if (failure !== undefined) yield* Effect.logWarning(`Telegram connection failed: ${failure.message}`)
      const base = Duration.toMillis(config.reconnectBaseDelay) * 2 ** Math.min(failures, 16)
      const ceiling = Math.min(base, Duration.toMillis(config.reconnectMaxDelay))
      const delay = ceiling / 2 + (yield* Random.nextBetween(0, ceiling / 2))
      failures += 1
      yield* Effect.logInfo(`reconnecting to Telegram in ${Math.round(delay)} ms`)
      yield* Effect.sleep(Duration.millis(delay))
    }
  }).pipe(
    Effect.catchTag("TelegramFatal", (fatal) =>
      Effect.logError(fatal.message).pipe(
        Effect.andThen(Ref.set(state, "failed")),
        Effect.andThen(Metric.update(Metrics.telegramConnected, 0)),
        Effect.andThen(Queue.fail(queue, fatal))
      ))
  )

  const flushOrStop = flushState.pipe(
    Effect.catchTag("UpdateStateFenced", (fenced) =>
      Effect.logError(`${fenced.message}: this instance stops reading Telegram`).pipe(
        Effect.andThen(Queue.failCause(queue, Cause.die(fenced))),
        Effect.andThen(Effect.interrupt)
      ))
  )

  yield* Effect.forkScoped(supervise)
  yield* flushOrStop.pipe(Effect.delay(config.stateFlushInterval), Effect.forever, Effect.forkScoped)
  yield* watchFreshness.pipe(Effect.delay("1 second"), Effect.forever, Effect.forkScoped)
  yield* Effect.addFinalizer(() =>
    flushState.pipe(
      Effect.catchTag("UpdateStateFenced", (fenced) => Effect.logError(fenced.message)),
      Effect.timeoutOption("5 seconds")
    )
  )

  return TelegramSource.of({
    events: Stream.fromQueue(queue),
    connectionState: Ref.get(state),
    channels: channelStatus
  })
}).pipe(Effect.annotateLogs("component", "telegram"))

/** The source for `telegram.*` as configured. */
export const make = Effect.gen(function*() {
  return yield* makeWith(yield* TelegramConfig)
})

/** Needs a `ChannelRegistry`, an `UpdateStateStore` and `BackfillRequests` (tests give their own database's). */
export const layerNoDeps = Layer.effect(TelegramSource, make)

/** With the registry and the update state on the PgBouncer pool of `database.url`. */
export const layer = layerNoDeps.pipe(
  Layer.provide(Layer.mergeAll(PgChannelRegistry.layer, PgUpdateStateStore.layer, PgBackfillRequests.layer))
)
