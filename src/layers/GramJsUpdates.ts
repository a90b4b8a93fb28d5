/**
 * Telegram's updates as the engine sequences them: which sequence an update
 * belongs to (a channel's pts, or the account's common pts), its pts and
 * pts_count, and the events it carries. Mapping a message can throw on a
 * payload the domain cannot hold: the update still moves pts (with no event),
 * and the caller counts and logs it.
 */
import { Api } from "telegram"
import { MessageCreated, MessageDeleted, MessageEdited, type MessageEvent } from "../domain/Message.ts"
import { chatOfPeer, type Directory, makeDirectory, toNumber, toTelegramMessage } from "./GramJsMapping.ts"

/** One sequenced update, its events built at receipt. */
export interface UpdateItem {
  readonly events: ReadonlyArray<MessageEvent>
  /** The newest message id it creates, 0 when none. */
  readonly topMessageId: number
}

export type Sequencing =
  | { readonly _tag: "Channel"; readonly channelId: number; readonly pts: number; readonly ptsCount: number; readonly update: Api.TypeUpdate }
  | { readonly _tag: "Common"; readonly pts: number; readonly ptsCount: number; readonly update: Api.TypeUpdate }
  | { readonly _tag: "ChannelTooLong"; readonly channelId: number }
  | { readonly _tag: "Other" }

const other: Sequencing = { _tag: "Other" }

/** Which sequence a single update moves, if any. */
export const sequencingOf = (update: unknown): Sequencing => {
  if (
    update instanceof Api.UpdateNewChannelMessage || update instanceof Api.UpdateEditChannelMessage
  ) {
    const channelId = chatOfPeer((update.message as { peerId?: Api.TypePeer }).peerId)
    return channelId === undefined ? other : { _tag: "Channel", channelId, pts: update.pts, ptsCount: update.ptsCount, update }
  }
  if (update instanceof Api.UpdateDeleteChannelMessages) {
    return { _tag: "Channel", channelId: toNumber(update.channelId), pts: update.pts, ptsCount: update.ptsCount, update }
  }
  if (update instanceof Api.UpdateChannelTooLong) return { _tag: "ChannelTooLong", channelId: toNumber(update.channelId) }
  if (
    update instanceof Api.UpdateNewMessage || update instanceof Api.UpdateEditMessage ||
    update instanceof Api.UpdateDeleteMessages || update instanceof Api.UpdateReadMessagesContents ||
    update instanceof Api.UpdateReadHistoryInbox || update instanceof Api.UpdateReadHistoryOutbox ||
    update instanceof Api.UpdateWebPage || update instanceof Api.UpdateFolderPeers ||
    update instanceof Api.UpdatePinnedMessages
  ) {
    return { _tag: "Common", pts: update.pts, ptsCount: update.ptsCount, update }
  }
  if (update instanceof Api.UpdateShortChatMessage || update instanceof Api.UpdateShortMessage) {
    return { _tag: "Common", pts: update.pts, ptsCount: update.ptsCount, update: update as unknown as Api.TypeUpdate }
  }
  return other
}

/** A new message (or its current edited version) as the event to store. */
export const messageEvent = (message: Api.Message, chatId: number, edited: boolean, directory: Directory, receivedAt: number): MessageEvent => {
  const domain = toTelegramMessage(message, chatId, directory)
  return edited || domain.editDate !== null
    ? new MessageEdited({ message: domain, receivedAt })
    : new MessageCreated({ message: domain, receivedAt })
}

export const deletedEvent = (channelId: number, messageId: number, receivedAt: number) =>
  new MessageDeleted({
    channelId: channelId as MessageDeleted["channelId"],
    messageId: messageId as MessageDeleted["messageId"],
    deletedAt: receivedAt,
    receivedAt
  })

/** A basic group's new message in its short form, as the full message it stands for. */
const fromShortChatMessage = (update: Api.UpdateShortChatMessage): Api.Message =>
  new Api.Message({
    id: update.id,
    peerId: new Api.PeerChat({ chatId: update.chatId }),
    fromId: new Api.PeerUser({ userId: update.fromId }),
    date: update.date,
    message: update.message,
    ...(update.entities != null ? { entities: update.entities } : {}),
    ...(update.fwdFrom != null ? { fwdFrom: update.fwdFrom } : {}),
    ...(update.replyTo != null ? { replyTo: update.replyTo } : {}),
    ...(update.viaBotId != null ? { viaBotId: update.viaBotId } : {})
  })

/**
 * The events of one update for the chats the gateway listens to
 * (`wanted(chatId)`); basic groups' deletions name ids only, so `groupOf`
 * finds their chat among recently seen messages.
 */
export const eventsOf = (
  update: unknown,
  directory: Directory,
  receivedAt: number,
  wanted: (chatId: number) => boolean,
  groupOf: (messageId: number) => number | undefined
): UpdateItem => {
  const message = (message: Api.TypeMessage, edited: boolean): UpdateItem => {
    if (!(message instanceof Api.Message)) return { events: [], topMessageId: 0 }
    const chatId = chatOfPeer(message.peerId)
    if (chatId === undefined || !wanted(chatId)) return { events: [], topMessageId: 0 }
    return { events: [messageEvent(message, chatId, edited, directory, receivedAt)], topMessageId: edited ? 0 : message.id }
  }
  if (update instanceof Api.UpdateNewChannelMessage || update instanceof Api.UpdateNewMessage) return message(update.message, false)
  if (update instanceof Api.UpdateEditChannelMessage || update instanceof Api.UpdateEditMessage) return message(update.message, true)
  if (update instanceof Api.UpdateShortChatMessage) return message(fromShortChatMessage(update), false)
  if (update instanceof Api.UpdateDeleteChannelMessages) {
    const channelId = toNumber(update.channelId)
    if (!wanted(channelId)) return { events: [], topMessageId: 0 }
    return { events: update.messages.map((id) => deletedEvent(channelId, id, receivedAt)), topMessageId: 0 }
  }
  if (update instanceof Api.UpdateDeleteMessages) {
    const events = update.messages.flatMap((id) => {
      const chatId = groupOf(id)
      return chatId !== undefined && wanted(chatId) ? [deletedEvent(chatId, id, receivedAt)] : []
    })
    return { events, topMessageId: 0 }
  }
  return { events: [], topMessageId: 0 }
}

/** The users and chats that came with a pushed update (GramJS attaches them). */
export const directoryOfPush = (update: unknown): Directory => {
  const entities = (update as { _entities?: Map<string, unknown> })._entities
  const known = entities === undefined ? [] : [...entities.values()]
  return makeDirectory(known, known)
}
