/**
 * What each Telegram method answers, computed from the World. Handlers throw
 * `RpcFailure` for the errors Telegram would return (codes and names as on
 * core.telegram.org/api/errors).
 */
import { Api } from "telegram"
import type { Account } from "./Account.ts"
import type { TlValue } from "./Tl.ts"
import { type ChannelState, long, type World } from "./World.ts"

export class RpcFailure extends Error {
  override readonly name = "RpcFailure"
  readonly code: number
  readonly errorMessage: string

  constructor(code: number, errorMessage: string) {
    super(`${code} ${errorMessage}`)
    this.code = code
    this.errorMessage = errorMessage
  }
}

export interface HandlerContext {
  readonly world: World
  readonly account: Account
  readonly dcId: number
  readonly host: string
  readonly port: number
  readonly settings: DifferenceSettings
}

/** How getChannelDifference answers; a test may change them while clients run. */
export interface DifferenceSettings {
  /** channelDifferenceTooLong when the client is further behind than this many pts. */
  differenceTooLongAfter: number
  /** The `timeout` (seconds) every answer carries: how long an open chat should wait before polling again. */
  differenceTimeout: number
}

type Handler = (ctx: HandlerContext, request: never) => TlValue | Promise<TlValue>

/** Wrappers a client puts around the real request. */
export const unwrapRequest = (request: unknown): unknown => {
  let current = request
  while (
    current instanceof Api.InvokeWithLayer || current instanceof Api.InitConnection ||
    current instanceof Api.InvokeWithoutUpdates || current instanceof Api.InvokeAfterMsg ||
    current instanceof Api.InvokeAfterMsgs
  ) {
    current = current.query
  }
  return current
}

export const methodName = (request: unknown): string =>
  (request as { className?: string }).className ?? "unknown"

const nowSeconds = () => Math.floor(Date.now() / 1000)
const HISTORY_PAGE_MAX = 100
/** Updates per getDifference answer (Telegram's own limit is larger; small here so slices are exercised). */
const COMMON_DIFFERENCE_LIMIT = 100
/** Telegram's cap on getChannelDifference's limit for user accounts. */
const DIFFERENCE_LIMIT_MAX = 100

const idOf = (value: { toString(): string }) => Number(value.toString())

const channelFromInput = (ctx: HandlerContext, input: unknown): ChannelState => {
  if (!(input instanceof Api.InputChannel || input instanceof Api.InputPeerChannel)) {
    throw new RpcFailure(400, "CHANNEL_INVALID")
  }
  const state = ctx.world.findChannel(idOf(input.channelId))
  if (state === undefined || state.ref.kind === "group" || BigInt(input.accessHash.toString()) !== state.ref.accessHash) {
    throw new RpcFailure(400, "CHANNEL_INVALID")
  }
  if (state.private) throw new RpcFailure(400, "CHANNEL_PRIVATE")
  return state
}

/** A channel by its input, or a basic group by `inputPeerChat`. */
const chatFromPeer = (ctx: HandlerContext, input: unknown): ChannelState => {
  if (!(input instanceof Api.InputPeerChat)) return channelFromInput(ctx, input)
  const state = ctx.world.findChannel(idOf(input.chatId))
  if (state === undefined || state.ref.kind !== "group") throw new RpcFailure(400, "CHAT_ID_INVALID")
  return state
}

const descending = (state: ChannelState) => [...state.messages.values()].sort((a, b) => b.id - a.id)

/**
 * messages.getHistory paging: newest first; max_id and min_id bound the ids;
 * offset_id starts the page just below that id (0 = the newest), or, without
 * it, offset_date just below that date (messages sent before it); add_offset
 * shifts the start (negative reaches newer messages), limit is capped at 100.
 */
export const pageHistory = (
  messagesNewestFirst: ReadonlyArray<Api.Message>,
  request: {
    readonly offsetId: number
    readonly offsetDate?: number
    readonly addOffset: number
    readonly limit: number
    readonly maxId: number
    readonly minId: number
  }
): Array<Api.Message> => {
  const bounded = messagesNewestFirst.filter((m) =>
    (request.maxId <= 0 || m.id < request.maxId) && (request.minId <= 0 || m.id > request.minId)
  )
  const offsetDate = request.offsetDate ?? 0
  const below = request.offsetId > 0
    ? bounded.findIndex((m) => m.id < request.offsetId)
    : offsetDate > 0
    ? bounded.findIndex((m) => m.date < offsetDate)
    : 0
  const start = Math.max(0, (below === -1 ? bounded.length : below) + request.addOffset)
  const limit = Math.min(Math.max(request.limit, 0), HISTORY_PAGE_MAX)
  return bounded.slice(start, start + limit)
}

const channelMessages = (ctx: HandlerContext, state: ChannelState, messages: Array<Api.TypeMessage>) =>
  state.ref.kind === "group"
    ? new Api.messages.Messages({ messages, chats: [ctx.world.toApiChannel(state)], users: ctx.world.usersOf(state) })
    : new Api.messages.ChannelMessages({
    pts: state.pts,
    count: state.messages.size,
    messages,
    topics: [],
    chats: [ctx.world.toApiChannel(state)],
    users: ctx.world.usersOf(state)
  })

const resolveUser = (ctx: HandlerContext, input: unknown): Api.User | undefined => {
  if (input instanceof Api.InputUserSelf) return ctx.world.selfUser
  if (input instanceof Api.InputUser) {
    return [ctx.world.selfUser, ctx.world.author].find((u) => u.id.toString() === input.userId.toString())
  }
  return undefined
}

const handlers: Record<string, Handler> = {
  "help.GetConfig": (ctx) =>
    new Api.Config({
      date: nowSeconds(),
      expires: nowSeconds() + 3600,
      testMode: false,
      thisDc: ctx.dcId,
      dcOptions: [new Api.DcOption({ id: ctx.dcId, ipAddress: ctx.host, port: ctx.port })],
      dcTxtDomainName: "localhost",
      chatSizeMax: 200,
      megagroupSizeMax: 200_000,
      forwardedCountMax: 100,
      onlineUpdatePeriodMs: 210_000,
      offlineBlurTimeoutMs: 5_000,
      offlineIdleTimeoutMs: 30_000,
      onlineCloudTimeoutMs: 300_000,
      notifyCloudDelayMs: 30_000,
      notifyDefaultDelayMs: 1_500,
      pushChatPeriodMs: 60_000,
      pushChatLimit: 2,
      editTimeLimit: 172_800,
      revokeTimeLimit: 2_147_483_647,
      revokePmTimeLimit: 2_147_483_647,
      ratingEDecay: 2_419_200,
      stickersRecentLimit: 200,
      channelsReadMediaPeriod: 604_800,
      callReceiveTimeoutMs: 20_000,
      callRingTimeoutMs: 90_000,
      callConnectTimeoutMs: 30_000,
      callPacketTimeoutMs: 10_000,
      meUrlPrefix: "https://t.me/",
      captionLengthMax: 1024,
      messageLengthMax: 4096,
      webfileDcId: ctx.dcId
    }),

  "users.GetUsers": (ctx, request: Api.users.GetUsers) =>
    request.id.flatMap((input) => resolveUser(ctx, input) ?? []),

  "updates.GetState": (ctx) =>
    new Api.updates.State({ pts: ctx.world.commonPts, qts: 0, date: nowSeconds(), seq: 0, unreadCount: 0 }),

  /**
   * The common sequence (basic groups here): what happened after the
   * client's pts, new messages apart from other updates (edits, deletions),
   * at most COMMON_DIFFERENCE_LIMIT updates per answer; a longer backlog comes
   * as `differenceSlice`s, each with the state to ask from next.
   */
  "updates.GetDifference": (ctx, request: Api.updates.GetDifference) => {
    if (request.pts <= 0) throw new RpcFailure(400, "PERSISTENT_TIMESTAMP_INVALID")
    if (request.pts > ctx.world.commonPts) throw new RpcFailure(400, "PERSISTENT_TIMESTAMP_OUTDATED")
    const pending = ctx.world.commonAfter(request.pts)
    if (pending.length === 0) return new Api.updates.DifferenceEmpty({ date: nowSeconds(), seq: 0 })
    const taken = pending.slice(0, COMMON_DIFFERENCE_LIMIT)
    const state = new Api.updates.State({ pts: taken[taken.length - 1]!.pts, qts: 0, date: nowSeconds(), seq: 0, unreadCount: 0 })
    const parts = {
      newMessages: taken.flatMap((e) => e.update instanceof Api.UpdateNewMessage ? [e.update.message] : []),
      newEncryptedMessages: [],
      otherUpdates: taken.flatMap((e) => e.update instanceof Api.UpdateNewMessage ? [] : [e.update]),
      chats: ctx.world.groups().map((group) => ctx.world.toApiChannel(group)),
      users: [ctx.world.author]
    }
    return taken.length < pending.length
      ? new Api.updates.DifferenceSlice({ ...parts, intermediateState: state })
      : new Api.updates.Difference({ ...parts, state })
  },

  "contacts.ResolveUsername": (ctx, request: Api.contacts.ResolveUsername) => {
    const channel = ctx.world.allChannels().find((c) => c.ref.username?.toLowerCase() === request.username.toLowerCase())
    if (channel !== undefined) {
      return new Api.contacts.ResolvedPeer({
        peer: new Api.PeerChannel({ channelId: long(channel.ref.id) }),
        chats: [ctx.world.toApiChannel(channel)],
        users: []
      })
    }
    const user = [ctx.world.selfUser, ctx.world.author].find((u) => u.username?.toLowerCase() === request.username.toLowerCase())
    if (user === undefined) throw new RpcFailure(400, "USERNAME_NOT_OCCUPIED")
    return new Api.contacts.ResolvedPeer({ peer: new Api.PeerUser({ userId: user.id }), chats: [], users: [user] })
  },

  "channels.GetChannels": (ctx, request: Api.channels.GetChannels) =>
    new Api.messages.Chats({ chats: request.id.map((input) => ctx.world.toApiChannel(channelFromInput(ctx, input))) }),

  "channels.GetFullChannel": (ctx, request: Api.channels.GetFullChannel) => {
    const state = channelFromInput(ctx, request.channel)
    const top = descending(state)[0]?.id ?? 0
    return new Api.messages.ChatFull({
      fullChat: new Api.ChannelFull({
        id: long(state.ref.id),
        about: "",
        participantsCount: 1,
        readInboxMaxId: top,
        readOutboxMaxId: top,
        unreadCount: 0,
        chatPhoto: new Api.PhotoEmpty({ id: long(0) }),
        notifySettings: new Api.PeerNotifySettings({}),
        botInfo: [],
        pts: state.pts
      }),
      chats: [ctx.world.toApiChannel(state)],
      users: ctx.world.usersOf(state)
    })
  },

  "messages.GetHistory": (ctx, request: Api.messages.GetHistory) => {
    const state = chatFromPeer(ctx, request.peer)
    return channelMessages(ctx, state, pageHistory(descending(state), request))
  },

  "channels.GetMessages": (ctx, request: Api.channels.GetMessages) => {
    const state = channelFromInput(ctx, request.channel)
    return channelMessages(
      ctx,
      state,
      request.id.map((input) => {
        const id = input instanceof Api.InputMessageID ? input.id : 0
        return state.messages.get(id) ?? new Api.MessageEmpty({ id })
      })
    )
  },

  /** Every channel in one answer, most recently active first (no paging). */
  "messages.GetDialogs": (ctx) => {
    const channels = ctx.world.allChannels()
      .map((state) => ({ state, top: descending(state)[0] }))
      .sort((a, b) => (b.top?.date ?? b.state.created) - (a.top?.date ?? a.state.created))
    return new Api.messages.Dialogs({
      dialogs: channels.map(({ state, top }) => dialogOf(state, top?.id ?? 0)),
      messages: channels.flatMap(({ top }) => top ?? []),
      chats: channels.map(({ state }) => ctx.world.toApiChannel(state)),
      users: [ctx.world.author]
    })
  },

  "updates.GetChannelDifference": (ctx, request: Api.updates.GetChannelDifference) => {
    const state = channelFromInput(ctx, request.channel)
    const timeout = ctx.settings.differenceTimeout
    if (request.pts <= 0) throw new RpcFailure(400, "PERSISTENT_TIMESTAMP_INVALID")
    if (request.pts > state.pts) throw new RpcFailure(400, "PERSISTENT_TIMESTAMP_OUTDATED")
    if (request.pts === state.pts) {
      return new Api.updates.ChannelDifferenceEmpty({ final: true, pts: state.pts, timeout })
    }
    const limit = Math.min(Math.max(1, request.limit), DIFFERENCE_LIMIT_MAX)
    if (state.pts - request.pts > ctx.settings.differenceTooLongAfter) {
      const newest = descending(state)
      return new Api.updates.ChannelDifferenceTooLong({
        final: true,
        timeout,
        dialog: dialogOf(state, newest[0]?.id ?? 0),
        messages: newest.slice(0, limit),
        chats: [ctx.world.toApiChannel(state)],
        users: ctx.world.usersOf(state)
      })
    }
    const pending = state.log.filter((entry) => entry.pts > request.pts)
    const taken = pending.slice(0, limit)
    return new Api.updates.ChannelDifference({
      final: taken.length === pending.length,
      pts: taken[taken.length - 1]?.pts ?? request.pts,
      timeout,
      newMessages: taken.flatMap((e) => e.update instanceof Api.UpdateNewChannelMessage ? [e.update.message] : []),
      otherUpdates: taken.flatMap((e) => e.update instanceof Api.UpdateNewChannelMessage ? [] : [e.update]),
      chats: [ctx.world.toApiChannel(state)],
      users: ctx.world.usersOf(state)
    })
  },

  "auth.SendCode": () =>
    new Api.auth.SentCode({
      type: new Api.auth.SentCodeTypeApp({ length: 5 }),
      phoneCodeHash: "simulator"
    }),

  "auth.SignIn": (ctx, request: Api.auth.SignIn) => {
    if (request.phoneCode !== ctx.account.loginCode) throw new RpcFailure(400, "PHONE_CODE_INVALID")
    if (ctx.account.hasPassword) throw new RpcFailure(401, "SESSION_PASSWORD_NEEDED")
    ctx.account.authorized = true
    return new Api.auth.Authorization({ user: ctx.world.selfUser })
  },

  "account.GetPassword": (ctx) => ctx.account.passwordInfo(),

  "auth.CheckPassword": async (ctx, request: Api.auth.CheckPassword) => {
    if (!(await ctx.account.checkPassword(request.password))) throw new RpcFailure(400, "PASSWORD_HASH_INVALID")
    ctx.account.authorized = true
    return new Api.auth.Authorization({ user: ctx.world.selfUser })
  },

  "auth.LogOut": (ctx) => {
    ctx.account.authorized = false
    return new Api.auth.LoggedOut({})
  }
}

const dialogOf = (state: ChannelState, topMessage: number) =>
  new Api.Dialog({
    peer: state.ref.kind === "group" ? new Api.PeerChat({ chatId: long(state.ref.id) }) : new Api.PeerChannel({ channelId: long(state.ref.id) }),
    topMessage,
    readInboxMaxId: topMessage,
    readOutboxMaxId: topMessage,
    unreadCount: 0,
    unreadMentionsCount: 0,
    unreadReactionsCount: 0,
    notifySettings: new Api.PeerNotifySettings({}),
    ...(state.ref.kind === "group" ? {} : { pts: state.pts })
  })

/** Methods an account that is not signed in may call. */
const WITHOUT_AUTHORIZATION = new Set(["help.GetConfig", "auth.SendCode", "auth.SignIn", "account.GetPassword", "auth.CheckPassword"])

/** Answers one (unwrapped) request. */
export const handleRequest = async (ctx: HandlerContext, request: unknown): Promise<TlValue> => {
  const method = methodName(request)
  const handler = handlers[method]
  if (handler === undefined) throw new RpcFailure(400, "METHOD_INVALID")
  if (!ctx.account.authorized && !WITHOUT_AUTHORIZATION.has(method)) throw new RpcFailure(401, "AUTH_KEY_UNREGISTERED")
  return handler(ctx, request as never)
}
