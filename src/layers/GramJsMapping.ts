/**
 * GramJS's TL objects to the gateway's domain: a message as a `TelegramMessage`
 * (`toTelegramMessage`), and any TL value as JSON-safe data (`toJsonSafe`:
 * big integers become strings, bytes base64). Mapping throws on a payload it
 * cannot represent; the caller logs and counts it and goes on.
 */
import { Api } from "telegram"
import {
  Entity,
  Media,
  type MediaKind,
  Sender,
  type SenderKind,
  TelegramMessage
} from "../domain/Message.ts"
import type { ChatKind } from "../services/ChannelRegistry.ts"


/** Users and chats that came with an update or a result, by plain id. */
export interface Directory {
  readonly users: ReadonlyMap<number, Api.User>
  readonly chats: ReadonlyMap<number, Api.Chat | Api.Channel>
}

export const makeDirectory = (users: ReadonlyArray<unknown>, chats: ReadonlyArray<unknown>): Directory => ({
  users: new Map(users.flatMap((user) => user instanceof Api.User ? [[toNumber(user.id), user] as const] : [])),
  chats: new Map(
    chats.flatMap((chat) => chat instanceof Api.Chat || chat instanceof Api.Channel ? [[toNumber(chat.id), chat] as const] : [])
  )
})

export const emptyDirectory: Directory = { users: new Map(), chats: new Map() }

/** GramJS's big-integer (or a native bigint, or a number) as a JS number: ids stay below 2^53. */
export const toNumber = (value: unknown): number => {
  const number = Number(typeof value === "object" && value !== null ? value.toString() : value)
  if (!Number.isSafeInteger(number)) throw new Error(`not an integer id: ${String(value)}`)
  return number
}

const isBigInteger = (value: object): boolean =>
  "toJSNumber" in value && typeof value.toJSNumber === "function" && "isNegative" in value

/**
 * TL bookkeeping fields that are not data. Keys starting with `_` are left
 * out too: no TL field is named so, and GramJS's custom classes keep their
 * derived state there (`_senderId`, `_chatPeer`, `_buttonsCount`, and
 * `_client`, the client itself, once a message is bound to one).
 */
const tlMetaKeys = new Set(["CONSTRUCTOR_ID", "SUBCLASS_OF_ID", "className", "classType", "originalArgs"])

/**
 * Any TL value as plain JSON data: `{ _: "Message", id: 1, ... }`, bigints as strings, bytes as base64.
 * It runs on every field of every received message (bench:mtproto's profile
 * put it first among the gateway's own functions), hence the plain loops.
 */
export const toJsonSafe = (value: unknown, depth = 0): unknown => {
  if (depth > 32) return "[too deep]"
  switch (typeof value) {
    case "string":
    case "boolean":
      return value
    case "number":
      return Number.isFinite(value) ? value : null
    case "bigint":
      return value.toString()
    case "object":
      break
    default:
      return null
  }
  if (value === null) return null
  if (Array.isArray(value)) {
    const items = new Array<unknown>(value.length)
    for (let i = 0; i < value.length; i++) items[i] = toJsonSafe(value[i], depth + 1)
    return items
  }
  if (value instanceof Uint8Array) return (Buffer.isBuffer(value) ? value : Buffer.from(value)).toString("base64")
  if (isBigInteger(value)) return String(value)
  const result: Record<string, unknown> = {}
  const className = (value as { className?: unknown }).className
  if (typeof className === "string") result._ = className
  // Own keys only, as `Object.keys` lists them: GramJS's custom Message also
  // has two dozen enumerable methods on its prototype, which a `for...in`
  // would visit and check one by one (three times slower in all).
  const keys = Object.keys(value)
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!
    if (key.charCodeAt(0) === 95 /* _ */ || tlMetaKeys.has(key)) continue
    const field = (value as Record<string, unknown>)[key]
    if (field == null || typeof field === "function") continue
    result[key] = toJsonSafe(field, depth + 1)
  }
  return result
}

/** The chat a peer names, if it is one the gateway can listen to. */
export const chatOfPeer = (peer: Api.TypePeer | undefined): number | undefined => {
  if (peer instanceof Api.PeerChannel) return toNumber(peer.channelId)
  if (peer instanceof Api.PeerChat) return toNumber(peer.chatId)
  return undefined
}

export const chatKindOf = (chat: Api.Chat | Api.Channel): ChatKind =>
  chat instanceof Api.Chat ? "group" : chat.megagroup === true ? "supergroup" : "channel"

const int = (value: unknown): number | null => (value === undefined || value === null ? null : toNumber(value))

const entityType = (className: string) => {
  const name = className.replace(/^(Input)?MessageEntity/, "")
  return name.charAt(0).toLowerCase() + name.slice(1)
}

export const toEntity = (entity: Api.TypeMessageEntity): Entity =>
  new Entity({
    type: entityType(entity.className),
    offset: entity.offset,
    length: entity.length,
    ...(entity instanceof Api.MessageEntityTextUrl ? { url: entity.url } : {}),
    ...(entity instanceof Api.MessageEntityMentionName ? { userId: toNumber(entity.userId) } : {}),
    ...(entity instanceof Api.MessageEntityPre ? { language: entity.language } : {}),
    ...(entity instanceof Api.MessageEntityCustomEmoji ? { customEmojiId: entity.documentId.toString() } : {})
  })

const noMedia = {
  mimeType: null,
  size: null,
  fileName: null,
  width: null,
  height: null,
  durationSeconds: null
} as const

const largestPhotoSize = (photo: Api.Photo) => {
  let best: { width: number; height: number; size: number } | undefined
  for (const size of photo.sizes) {
    const candidate = size instanceof Api.PhotoSize
      ? { width: size.w, height: size.h, size: size.size }
      : size instanceof Api.PhotoSizeProgressive
      ? { width: size.w, height: size.h, size: Math.max(0, ...size.sizes) }
      : undefined
    if (candidate !== undefined && (best === undefined || candidate.width * candidate.height > best.width * best.height)) {
      best = candidate
    }
  }
  return best
}

const documentMedia = (document: Api.Document): Media => {
  let kind: MediaKind = "document"
  let fileName: string | null = null
  let width: number | null = null
  let height: number | null = null
  let durationSeconds: number | null = null
  const rank: Record<MediaKind, number> = {
    sticker: 6, animation: 5, voice: 4, audio: 3, video: 2, document: 1,
    photo: 0, webpage: 0, poll: 0, geo: 0, contact: 0, other: 0
  }
  const prefer = (candidate: MediaKind) => {
    if (rank[candidate] > rank[kind]) kind = candidate
  }
  for (const attribute of document.attributes) {
    if (attribute instanceof Api.DocumentAttributeFilename) fileName = attribute.fileName
    else if (attribute instanceof Api.DocumentAttributeVideo) {
      prefer("video")
      width = attribute.w
      height = attribute.h
      durationSeconds = attribute.duration
    } else if (attribute instanceof Api.DocumentAttributeAudio) {
      prefer(attribute.voice === true ? "voice" : "audio")
      durationSeconds = attribute.duration
    } else if (attribute instanceof Api.DocumentAttributeImageSize) {
      width = attribute.w
      height = attribute.h
    } else if (attribute instanceof Api.DocumentAttributeSticker) prefer("sticker")
    else if (attribute instanceof Api.DocumentAttributeAnimated) prefer("animation")
  }
  return new Media({ kind, mimeType: document.mimeType, size: toNumber(document.size), fileName, width, height, durationSeconds })
}

/** Metadata of the attached media; the file is never downloaded. */
export const toMedia = (media: Api.TypeMessageMedia | undefined): Media | null => {
  if (media == null || media instanceof Api.MessageMediaEmpty) return null
  if (media instanceof Api.MessageMediaPhoto) {
    const best = media.photo instanceof Api.Photo ? largestPhotoSize(media.photo) : undefined
    return new Media({
      ...noMedia,
      kind: "photo",
      mimeType: "image/jpeg",
      size: best?.size ?? null,
      width: best?.width ?? null,
      height: best?.height ?? null
    })
  }
  if (media instanceof Api.MessageMediaDocument) {
    return media.document instanceof Api.Document ? documentMedia(media.document) : new Media({ ...noMedia, kind: "document" })
  }
  const kind: MediaKind = media instanceof Api.MessageMediaWebPage
    ? "webpage"
    : media instanceof Api.MessageMediaPoll
    ? "poll"
    : media instanceof Api.MessageMediaGeo || media instanceof Api.MessageMediaGeoLive || media instanceof Api.MessageMediaVenue
    ? "geo"
    : media instanceof Api.MessageMediaContact
    ? "contact"
    : "other"
  return new Media({ ...noMedia, kind })
}

const userName = (user: Api.User | undefined): string | null => {
  if (user === undefined) return null
  const name = [user.firstName, user.lastName].filter((part) => part != null && part.length > 0).join(" ")
  return name.length > 0 ? name : user.username ?? null
}

const titleOf = (directory: Directory, chatId: number) => directory.chats.get(chatId)?.title ?? null

export const toSender = (message: Api.Message, chatId: number, directory: Directory): Sender | null => {
  const from = message.fromId
  const make = (id: number | null, kind: SenderKind, name: string | null) => new Sender({ id, kind, name })
  if (from instanceof Api.PeerUser) {
    const id = toNumber(from.userId)
    const user = directory.users.get(id)
    return make(id, user?.bot === true ? "bot" : "user", userName(user))
  }
  if (from instanceof Api.PeerChannel) {
    const id = toNumber(from.channelId)
    // A supergroup admin posting anonymously appears as the group itself.
    return make(id, id === chatId && message.post !== true ? "anonymous" : "channel", titleOf(directory, id))
  }
  if (from instanceof Api.PeerChat) return make(toNumber(from.chatId), "chat", titleOf(directory, toNumber(from.chatId)))
  return message.post === true ? make(chatId, "channel", titleOf(directory, chatId)) : null
}

/** The domain message; throws (a schema or id error) when the TL message cannot be one. */
export const toTelegramMessage = (message: Api.Message, chatId: number, directory: Directory): TelegramMessage =>
  new TelegramMessage({
    channelId: chatId as TelegramMessage["channelId"],
    messageId: message.id as TelegramMessage["messageId"],
    date: message.date,
    editDate: message.editDate ?? null,
    sender: toSender(message, chatId, directory),
    text: message.message ?? "",
    entities: (message.entities ?? []).map(toEntity),
    media: toMedia(message.media),
    replyToMessageId: message.replyTo instanceof Api.MessageReplyHeader ? message.replyTo.replyToMsgId ?? null : null,
    groupedId: message.groupedId == null ? null : message.groupedId.toString(),
    views: int(message.views),
    forwards: int(message.forwards),
    raw: toJsonSafe(message)
  })
