/**
 * The TelegramSource on GramJS.
 *
 * At start the session file is checked (missing, too open, corrupt). Then a
 * supervisor keeps one connection alive: it connects a fresh client under a
 * deadline, and when the connection drops it waits a jittered, doubling delay
 * and connects a new one (GramJS's own reconnect neither catches up nor
 * reports). A fatal session error ends `events` with `TelegramFatal`, never a
 * retry.
 *
 * In each connection, every configured chat has a worker: it resolves the
 * chat (registry first, Telegram once), then catches up through
 * messages.getHistory from the last message id it has read (push updates
 * alone are not reliable for channels, TELEGRAM.md), and polls again every
 * `historyPollInterval`. A long FLOOD_WAIT pauses only the worker that got it.
 * Pushed updates of resolved chats become events as they arrive. Read
 * progress (last message id, pts) goes to the registry every few seconds.
 */
import { Cause, Duration, Effect, Layer, Metric, Queue, Random, Ref, Stream } from "effect"
import { Api, helpers } from "telegram"
import { Raw } from "telegram/events/Raw.js"
import { MessageCreated, MessageDeleted, MessageEdited, type MessageEvent } from "../domain/Message.ts"
import type { SourceBatch } from "../domain/SourceBatch.ts"
import { ChannelRegistry, type KnownChat, type ReadProgress } from "../services/ChannelRegistry.ts"
import { TelegramConfig } from "../services/GatewayConfig.ts"
import * as Metrics from "../services/Metrics.ts"
import { type ConnectionState, type TelegramFatal, TelegramSource } from "../services/TelegramSource.ts"
import { type CallError, clientSettings, type GramJs, makeGramJs } from "./GramJsClient.ts"
import { classifyUpdate, type Directory, makeDirectory, toTelegramMessage } from "./GramJsMapping.ts"
import { type ChatReference, inputPeerOf, parseChatReference, resolveChat } from "./GramJsResolve.ts"
import * as PgChannelRegistry from "./PgChannelRegistry.ts"
import { readSession } from "./SessionFile.ts"

const HISTORY_PAGE = 100
/** A catch-up fetches at most this many pages (10,000 messages); older ones are left to a backfill. */
const HISTORY_MAX_PAGES = 100
const PROGRESS_FLUSH_INTERVAL = Duration.seconds(5)
/** Basic groups' deletions name message ids only; recent ids are kept to find their chat. */
const GROUP_MESSAGES_KEPT = 10_000

/** A resolved chat and how far it has been read; outlives connections. */
interface ChatState {
  readonly chat: KnownChat
  lastMessageId: number | null
  lastPts: number | null
  dirty: boolean
  /** The first catch-up of the process rewinds by `catchUpOverlap`. */
  caughtUp: boolean
}

const isMessage = (message: Api.TypeMessage): message is Api.Message => message instanceof Api.Message

export const make = Effect.gen(function*() {
  const config = yield* TelegramConfig
  const registry = yield* ChannelRegistry
  const stored = yield* readSession(config.sessionFile)
  const references = yield* Effect.forEach(config.channels, parseChatReference)
  const settings = clientSettings(config, stored)
  const context = yield* Effect.context<never>()
  const runFork = Effect.runForkWith(context)

  const queue = yield* Queue.unbounded<SourceBatch, TelegramFatal | Cause.Done>()
  const state = yield* Ref.make<ConnectionState>("connecting")
  const chats = new Map<number, ChatState>()
  const groupMessageChats = new Map<number, number>()

  if (references.length === 0) {
    yield* Effect.logWarning("telegram.channels is empty: the gateway is connected to Telegram but listens to no chat")
  }

  const setState = (next: ConnectionState) =>
    Ref.set(state, next).pipe(Effect.andThen(Metric.update(Metrics.telegramConnected, next === "connected" ? 1 : 0)))

  /** Queues an event; the chat's read progress moves only once it is committed. */
  const emit = (event: MessageEvent, chat: ChatState, messageId: number | undefined, pts: number | undefined) =>
    Queue.offerUnsafe(queue, { events: [event], onCommitted: Effect.sync(() => advance(chat, messageId, pts)) })

  const advance = (chat: ChatState, messageId: number | undefined, pts: number | undefined) => {
    if (messageId !== undefined && messageId > (chat.lastMessageId ?? 0)) {
      chat.lastMessageId = messageId
      chat.dirty = true
    }
    if (pts !== undefined && pts > (chat.lastPts ?? 0)) {
      chat.lastPts = pts
      chat.dirty = true
    }
  }

  const messageEvent = (message: Api.Message, chatId: number, edited: boolean, directory: Directory): MessageEvent => {
    const domain = toTelegramMessage(message, chatId, directory)
    const receivedAt = Date.now()
    return edited || domain.editDate !== null
      ? new MessageEdited({ message: domain, receivedAt })
      : new MessageCreated({ message: domain, receivedAt })
  }

  const malformed = (what: string, cause: unknown) =>
    runFork(
      Effect.logWarning(`skipped a malformed ${what} from Telegram: ${cause instanceof Error ? cause.message : String(cause)}`).pipe(
        Effect.andThen(Metric.update(Metrics.telegramMalformedUpdates, 1))
      )
    )

  const rememberGroupMessage = (messageId: number, chatId: number) => {
    groupMessageChats.set(messageId, chatId)
    if (groupMessageChats.size > GROUP_MESSAGES_KEPT) {
      const oldest = groupMessageChats.keys().next()
      if (oldest.done !== true) groupMessageChats.delete(oldest.value)
    }
  }

  /** A pushed update, synchronously so events keep their arrival order. */
  const onUpdate = (update: unknown) => {
    try {
      const incoming = classifyUpdate(update)
      if (incoming._tag === "Message") {
        const chat = chats.get(incoming.chatId)
        if (chat === undefined) return
        const entities = (update as { _entities?: Map<string, unknown> })._entities
        const known = entities === undefined ? [] : [...entities.values()]
        emit(
          messageEvent(incoming.message, incoming.chatId, incoming.edited, makeDirectory(known, known)),
          chat,
          incoming.edited ? undefined : incoming.message.id,
          incoming.pts
        )
        if (chat.chat.kind === "group") rememberGroupMessage(incoming.message.id, incoming.chatId)
      } else if (incoming._tag === "Deleted") {
        const receivedAt = Date.now()
        for (const messageId of incoming.messageIds) {
          const chatId = incoming.chatId ?? groupMessageChats.get(messageId)
          const chat = chatId === undefined ? undefined : chats.get(chatId)
          if (chat === undefined) continue
          emit(
            new MessageDeleted({
              channelId: chat.chat.channelId as MessageDeleted["channelId"],
              messageId: messageId as MessageDeleted["messageId"],
              deletedAt: receivedAt,
              receivedAt
            }),
            chat,
            undefined,
            incoming.pts
          )
        }
      }
    } catch (cause) {
      malformed(`update (${(update as { className?: string })?.className ?? typeof update})`, cause)
    }
  }

  const flushProgress = Effect.suspend(() => {
    const dirty = [...chats.values()].filter((chat) => chat.dirty)
    if (dirty.length === 0) return Effect.void
    for (const chat of dirty) chat.dirty = false
    const progress: Array<ReadProgress> = dirty.map((chat) => ({
      channelId: chat.chat.channelId,
      lastMessageId: chat.lastMessageId,
      lastPts: chat.lastPts
    }))
    return registry.saveProgress(progress).pipe(
      Effect.catch((error) =>
        Effect.sync(() => {
          for (const chat of dirty) chat.dirty = true
        }).pipe(Effect.andThen(Effect.logWarning(`read progress not saved, will retry: ${error.message}`)))
      )
    )
  })

  /** Messages newer than `minId`, oldest first, paged as Telegram asks (newest first, by offset id). */
  const historySince = (gram: GramJs, chat: ChatState, minId: number) =>
    Effect.gen(function*() {
      const collected: Array<{ readonly message: Api.Message; readonly directory: Directory }> = []
      let offsetId = 0
      for (let page = 0; page < HISTORY_MAX_PAGES; page++) {
        const result = yield* gram.invoke(
          new Api.messages.GetHistory({
            peer: inputPeerOf(chat.chat),
            offsetId,
            offsetDate: 0,
            addOffset: 0,
            limit: HISTORY_PAGE,
            maxId: 0,
            minId,
            hash: helpers.returnBigInt(0)
          })
        )
        if (result instanceof Api.messages.MessagesNotModified) break
        const directory = makeDirectory(result.users, result.chats)
        const messages = result.messages.filter(isMessage).filter((message) => message.id > minId)
        for (const message of messages) collected.push({ message, directory })
        const oldest = Math.min(...messages.map((message) => message.id))
        if (messages.length === 0 || oldest <= minId + 1) break
        offsetId = oldest
        if (page === HISTORY_MAX_PAGES - 1) {
          yield* Effect.logWarning(
            `${chat.chat.title ?? chat.chat.channelId}: more than ${HISTORY_MAX_PAGES * HISTORY_PAGE} messages missed; older ones are left to a backfill`
          )
        }
      }
      return collected.sort((a, b) => a.message.id - b.message.id)
    })

  /** Emits what the chat received since it was last read. */
  const catchUp = (gram: GramJs, chat: ChatState) =>
    Effect.gen(function*() {
      if (chat.lastMessageId === null) {
        // Never read: start from now (history before it is a backfill's job).
        const newest = yield* historyNewest(gram, chat)
        advance(chat, newest, undefined)
        chat.caughtUp = true
        return
      }
      const minId = chat.caughtUp ? chat.lastMessageId : Math.max(0, chat.lastMessageId - config.catchUpOverlap)
      const missed = yield* historySince(gram, chat, minId)
      for (const { directory, message } of missed) {
        try {
          emit(messageEvent(message, chat.chat.channelId, false, directory), chat, message.id, undefined)
        } catch (cause) {
          malformed("message from history", cause)
        }
      }
      chat.caughtUp = true
      if (missed.length > 0) {
        yield* Metric.update(Metrics.telegramMessagesRecovered, missed.length)
        yield* Effect.logInfo(`caught up ${missed.length} message(s) in ${chat.chat.title ?? chat.chat.channelId} through history`)
      }
    }).pipe(Effect.withSpan("TelegramSource.catchUp", { attributes: { channelId: chat.chat.channelId } }))

  const historyNewest = (gram: GramJs, chat: ChatState) =>
    gram.invoke(
      new Api.messages.GetHistory({
        peer: inputPeerOf(chat.chat),
        offsetId: 0,
        offsetDate: 0,
        addOffset: 0,
        limit: 1,
        maxId: 0,
        minId: 0,
        hash: helpers.returnBigInt(0)
      })
    ).pipe(
      Effect.map((result) =>
        result instanceof Api.messages.MessagesNotModified ? 0 : Math.max(0, ...result.messages.map((message) => message.id))
      )
    )

  /**
   * Runs `effect` until it succeeds: a long FLOOD_WAIT waits its seconds (only
   * this worker waits), another call error waits a poll interval. Fatal errors
   * and registry errors go up to end the connection.
   */
  const persistently = <A, E extends CallError | { readonly _tag: string; readonly message: string }>(
    what: string,
    effect: Effect.Effect<A, E>
  ): Effect.Effect<A, Exclude<E, CallError> | TelegramFatal> =>
    effect.pipe(
      Effect.catch((error): Effect.Effect<A, Exclude<E, CallError> | TelegramFatal> => {
        switch (error._tag) {
          case "TelegramFloodWait": {
            const flood = error as Extract<CallError, { _tag: "TelegramFloodWait" }>
            return Effect.logWarning(`${what}: ${flood.message}; scheduled again in ${flood.seconds} s, other work goes on`).pipe(
              Effect.andThen(Effect.sleep(Duration.seconds(flood.seconds))),
              Effect.andThen(persistently(what, effect))
            )
          }
          case "TelegramCallError":
            return Effect.logWarning(`${what}: ${error.message}; trying again in ${Duration.format(config.historyPollInterval)}`).pipe(
              Effect.andThen(Effect.sleep(config.historyPollInterval)),
              Effect.andThen(persistently(what, effect))
            )
          default:
            return Effect.fail(error as Exclude<E, CallError> | TelegramFatal)
        }
      })
    )

  const chatWorker = (gram: GramJs, reference: ChatReference, known: ReadonlyArray<KnownChat>) =>
    Effect.gen(function*() {
      const resolved = yield* persistently(`resolving ${reference.text}`, resolveChat(gram, reference, known).pipe(Effect.provideService(ChannelRegistry, registry)))
      let chat = chats.get(resolved.channelId)
      if (chat === undefined) {
        chat = { chat: resolved, lastMessageId: resolved.lastMessageId, lastPts: resolved.lastPts, dirty: false, caughtUp: false }
        chats.set(resolved.channelId, chat)
      }
      const current = chat
      yield* persistently(`catching up ${reference.text}`, catchUp(gram, current)).pipe(
        Effect.andThen(Effect.sleep(config.historyPollInterval)),
        Effect.forever
      )
    }).pipe(Effect.annotateLogs("chat", reference.text))

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
        const known = yield* registry.list
        const workers = Effect.forEach(references, (reference) => chatWorker(gram, reference, known), {
          concurrency: "unbounded",
          discard: true
        }).pipe(Effect.andThen(Effect.never))
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

  yield* Effect.forkScoped(supervise)
  yield* flushProgress.pipe(Effect.delay(PROGRESS_FLUSH_INTERVAL), Effect.forever, Effect.forkScoped)
  yield* Effect.addFinalizer(() => flushProgress.pipe(Effect.timeoutOption("5 seconds")))

  return TelegramSource.of({
    events: Stream.fromQueue(queue),
    connectionState: Ref.get(state)
  })
}).pipe(Effect.annotateLogs("component", "telegram"))

/** Needs a `ChannelRegistry` (tests give their own database's). */
export const layerNoDeps = Layer.effect(TelegramSource, make)

/** With the registry on the PgBouncer pool of `database.url`. */
export const layer = layerNoDeps.pipe(Layer.provide(PgChannelRegistry.layer))
