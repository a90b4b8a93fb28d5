/**
 * What the simulated Telegram knows: the logged-in account, channels and
 * supergroups with their message history and each one's pts log, and basic
 * groups, whose messages share the account's common sequence (one pts and
 * one message id counter for all of them, as on Telegram).
 * Every change goes through `post`, `edit` or `delete`, which advance pts as
 * Telegram does (by pts_count) and announce the update to listeners.
 */
import { randomBytes } from "node:crypto"
import { Api, helpers } from "telegram"

/** `group` is a basic group: no username, no access hash, in the common sequence. */
export type ChannelKind = "channel" | "supergroup" | "group"

export interface ChannelRef {
  readonly id: number
  readonly accessHash: bigint
  readonly username: string | undefined
  readonly title: string
  readonly kind: ChannelKind
}

/** A channel by reference, id or username. */
export type ChannelSelector = ChannelRef | number | string

export interface PostInput {
  readonly text: string
  readonly entities?: ReadonlyArray<Api.TypeMessageEntity>
  readonly media?: Api.TypeMessageMedia
  readonly replyTo?: number
  readonly groupedId?: bigint
  /** Unix seconds; defaults to now. */
  readonly date?: number
}

/** One pts step: the update that moved the channel from `pts - ptsCount` to `pts`. */
export interface PtsEntry {
  readonly pts: number
  readonly ptsCount: number
  readonly update:
    | Api.UpdateNewChannelMessage
    | Api.UpdateEditChannelMessage
    | Api.UpdateDeleteChannelMessages
    | Api.UpdateNewMessage
    | Api.UpdateEditMessage
    | Api.UpdateDeleteMessages
}

export class UnknownChannelError extends Error {
  override readonly name = "UnknownChannelError"
  constructor(selector: ChannelSelector) {
    super(`the simulator has no channel ${typeof selector === "object" ? selector.id : selector}`)
  }
}

export class UnknownMessageError extends Error {
  override readonly name = "UnknownMessageError"
  constructor(channelId: number, messageId: number) {
    super(`channel ${channelId} has no message ${messageId}`)
  }
}

export class InvalidUsernameError extends Error {
  override readonly name = "InvalidUsernameError"
  constructor(username: string) {
    super(`"${username}" is not a Telegram username: use 5-32 letters, digits or underscores, starting with a letter`)
  }
}

const USERNAME = /^[a-zA-Z][a-zA-Z0-9_]{3,30}[a-zA-Z0-9]$/

export interface ChannelState {
  readonly ref: ChannelRef
  readonly created: number
  /** By id; deleted messages are removed. */
  readonly messages: Map<number, Api.Message>
  readonly log: Array<PtsEntry>
  pts: number
  lastMessageId: number
  /** Calls naming it are answered CHANNEL_PRIVATE (the account was banned or the channel made private). */
  private: boolean
}

export const long = (value: number | bigint) => helpers.returnBigInt(value)
const nowSeconds = () => Math.floor(Date.now() / 1000)
const randomAccessHash = () => randomBytes(8).readBigInt64LE(0) & 0x7fffffffffffffffn

const SELF_USER_ID = 100_000_001
const AUTHOR_USER_ID = 100_000_002
const FIRST_CHANNEL_ID = 1_000_000_001
const FIRST_GROUP_ID = 500_000_001

export class World {
  readonly selfUser: Api.User
  /** Who writes in supergroups (channel posts have no sender). */
  readonly author: Api.User
  private readonly channels = new Map<number, ChannelState>()
  private readonly listeners = new Set<(updates: Api.Updates) => void>()
  private nextChannelId = FIRST_CHANNEL_ID
  private nextGroupId = FIRST_GROUP_ID
  /** The account's common sequence (private chats and basic groups): its pts, its log, its message ids. */
  private readonly common = { pts: 1, log: [] as Array<PtsEntry>, lastMessageId: 0 }

  get commonPts(): number {
    return this.common.pts
  }

  /** Entries of the common sequence after `pts`, oldest first. */
  commonAfter(pts: number): ReadonlyArray<PtsEntry> {
    return this.common.log.filter((entry) => entry.pts > pts)
  }

  /** Every basic group, as clients see them. */
  groups(): ReadonlyArray<ChannelState> {
    return [...this.channels.values()].filter((state) => state.ref.kind === "group")
  }

  constructor(self: { readonly phone: string; readonly firstName: string; readonly username: string }) {
    this.selfUser = new Api.User({
      self: true,
      id: long(SELF_USER_ID),
      accessHash: long(randomAccessHash()),
      firstName: self.firstName,
      username: self.username,
      phone: self.phone
    })
    this.author = new Api.User({
      id: long(AUTHOR_USER_ID),
      accessHash: long(randomAccessHash()),
      firstName: "Author",
      username: "sim_author"
    })
  }

  /** Usernames follow Telegram's rule (5-32 letters, digits, underscores, a letter first), or clients cannot resolve them. */
  addChannel(input: {
    readonly username?: string
    readonly title: string
    readonly kind: ChannelKind
    /** A specific id (e.g. to keep runs apart in a shared database); by default the next free one. */
    readonly id?: number
  }): ChannelRef {
    if (input.username !== undefined && !USERNAME.test(input.username)) {
      throw new InvalidUsernameError(input.username)
    }
    if (input.id !== undefined && this.channels.has(input.id)) throw new Error(`channel ${input.id} already exists`)
    if (input.kind === "group" && input.username !== undefined) throw new Error("basic groups have no username")
    const ref: ChannelRef = {
      id: input.id ?? (input.kind === "group" ? this.nextGroupId++ : this.nextChannelId++),
      accessHash: input.kind === "group" ? 0n : randomAccessHash(),
      username: input.username,
      title: input.title,
      kind: input.kind
    }
    // A new channel starts at pts 1, as on Telegram.
    this.channels.set(ref.id, { ref, created: nowSeconds(), messages: new Map(), log: [], pts: 1, lastMessageId: 0, private: false })
    return ref
  }

  channel(selector: ChannelSelector): ChannelState {
    const found = typeof selector === "string"
      ? [...this.channels.values()].find((c) => c.ref.username?.toLowerCase() === selector.toLowerCase())
      : this.channels.get(typeof selector === "number" ? selector : selector.id)
    if (found === undefined) throw new UnknownChannelError(selector)
    return found
  }

  findChannel(id: number): ChannelState | undefined {
    return this.channels.get(id)
  }

  allChannels(): ReadonlyArray<ChannelState> {
    return [...this.channels.values()]
  }

  /** Messages oldest first. */
  history(selector: ChannelSelector): ReadonlyArray<Api.Message> {
    return [...this.channel(selector).messages.values()].sort((a, b) => a.id - b.id)
  }

  post(selector: ChannelSelector, input: PostInput): Api.Message {
    const state = this.channel(selector)
    const group = state.ref.kind === "group"
    const id = group ? ++this.common.lastMessageId : ++state.lastMessageId
    if (group) state.lastMessageId = id
    const message = new Api.Message({
      id,
      peerId: group ? new Api.PeerChat({ chatId: long(state.ref.id) }) : new Api.PeerChannel({ channelId: long(state.ref.id) }),
      date: input.date ?? nowSeconds(),
      message: input.text,
      ...(state.ref.kind === "channel" ? { post: true } : { fromId: new Api.PeerUser({ userId: this.author.id }) }),
      ...(input.entities !== undefined ? { entities: [...input.entities] } : {}),
      ...(input.media !== undefined ? { media: input.media } : {}),
      ...(input.replyTo !== undefined ? { replyTo: new Api.MessageReplyHeader({ replyToMsgId: input.replyTo }) } : {}),
      ...(input.groupedId !== undefined ? { groupedId: long(input.groupedId) } : {})
    })
    state.messages.set(message.id, message)
    this.advance(state, 1, (pts, ptsCount) =>
      group ? new Api.UpdateNewMessage({ message, pts, ptsCount }) : new Api.UpdateNewChannelMessage({ message, pts, ptsCount }))
    return message
  }

  /**
   * Edits a message. Its edit_date is now, or one second after its previous
   * edit when edits come faster than once a second: versions are told apart
   * by edit_date, which Telegram gives in whole seconds.
   */
  edit(selector: ChannelSelector, messageId: number, text: string): Api.Message {
    const state = this.channel(selector)
    const previous = state.messages.get(messageId)
    if (previous === undefined) throw new UnknownMessageError(state.ref.id, messageId)
    // originalArgs: the fields the message was built from (GramJS keeps them).
    const fields = previous.originalArgs as ConstructorParameters<typeof Api.Message>[0]
    const editDate = Math.max(nowSeconds(), (previous.editDate ?? 0) + 1)
    const message = new Api.Message({ ...fields, message: text, editDate })
    state.messages.set(messageId, message)
    this.advance(state, 1, (pts, ptsCount) =>
      state.ref.kind === "group"
        ? new Api.UpdateEditMessage({ message, pts, ptsCount })
        : new Api.UpdateEditChannelMessage({ message, pts, ptsCount }))
    return message
  }

  /** Deletes the given messages that exist; pts advances by how many were deleted. */
  delete(selector: ChannelSelector, messageIds: ReadonlyArray<number>): ReadonlyArray<number> {
    const state = this.channel(selector)
    const deleted = messageIds.filter((id) => state.messages.delete(id))
    if (deleted.length === 0) return deleted
    this.advance(state, deleted.length, (pts, ptsCount) =>
      state.ref.kind === "group"
        ? new Api.UpdateDeleteMessages({ messages: deleted, pts, ptsCount })
        : new Api.UpdateDeleteChannelMessages({ channelId: long(state.ref.id), messages: deleted, pts, ptsCount }))
    return deleted
  }

  /** From now on every call naming the channel is answered CHANNEL_PRIVATE (false undoes it). */
  setPrivate(selector: ChannelSelector, value = true): void {
    this.channel(selector).private = value
  }

  /** Pushes `updateChannelTooLong`, as Telegram does when a client should fetch the channel's difference. */
  announceTooLong(selector: ChannelSelector): void {
    const state = this.channel(selector)
    const updates = new Api.Updates({
      updates: [new Api.UpdateChannelTooLong({ channelId: long(state.ref.id), pts: state.pts })],
      users: [],
      chats: [this.toApiChannel(state)],
      date: nowSeconds(),
      seq: 0
    })
    for (const listener of this.listeners) listener(updates)
  }

  /** The `Api.Channel` a client sees for this channel, or the `Api.Chat` of a basic group. */
  toApiChannel(state: ChannelState): Api.Channel | Api.Chat {
    if (state.ref.kind === "group") {
      return new Api.Chat({
        id: long(state.ref.id),
        title: state.ref.title,
        photo: new Api.ChatPhotoEmpty(),
        participantsCount: 2,
        date: state.created,
        version: 1
      })
    }
    return new Api.Channel({
      id: long(state.ref.id),
      accessHash: long(state.ref.accessHash),
      title: state.ref.title,
      photo: new Api.ChatPhotoEmpty(),
      date: state.created,
      ...(state.ref.username !== undefined ? { username: state.ref.username } : {}),
      ...(state.ref.kind === "channel" ? { broadcast: true } : { megagroup: true })
    })
  }

  /** Users a channel's messages mention. */
  usersOf(state: ChannelState): Array<Api.User> {
    return state.ref.kind === "channel" ? [] : [this.author]
  }

  /** Registers a listener for every change; returns the unsubscribe function. */
  subscribe(listener: (updates: Api.Updates) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  private advance(
    state: ChannelState,
    ptsCount: number,
    makeUpdate: (pts: number, ptsCount: number) => PtsEntry["update"]
  ): void {
    // A basic group moves the account's common sequence, a channel its own.
    const sequence = state.ref.kind === "group" ? this.common : state
    sequence.pts += ptsCount
    const update = makeUpdate(sequence.pts, ptsCount)
    sequence.log.push({ pts: sequence.pts, ptsCount, update })
    const updates = new Api.Updates({
      updates: [update],
      users: this.usersOf(state),
      chats: [this.toApiChannel(state)],
      date: nowSeconds(),
      seq: 0
    })
    for (const listener of this.listeners) listener(updates)
  }
}
