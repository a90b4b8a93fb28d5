/**
 * The configured chats (`telegram.channels`: @username, t.me link or numeric
 * id) resolved to ids and access hashes: from the ChannelRegistry when it
 * already knows them, else from Telegram once (contacts.resolveUsername for a
 * username, the dialogs for a numeric id), then remembered.
 */
import { Effect, Schedule } from "effect"
import { Api, helpers } from "telegram"
import { type ChatIdentity, ChannelRegistry, type KnownChat } from "../services/ChannelRegistry.ts"
import { type ChatReference, matches } from "../services/ChatReference.ts"
import { TelegramCallError } from "../services/TelegramSource.ts"
import type { CallError, GramJs } from "./GramJsClient.ts"
import { chatKindOf, toNumber } from "./GramJsMapping.ts"

// GramJsTelegramSource reads these from here.
export { type ChatReference, parseChatReference } from "../services/ChatReference.ts"

export const identityOf = (chat: Api.Chat | Api.Channel): ChatIdentity => ({
  channelId: toNumber(chat.id),
  accessHash: chat instanceof Api.Channel && chat.accessHash != null ? chat.accessHash.toString() : null,
  username: chat instanceof Api.Channel ? chat.username ?? null : null,
  title: chat.title,
  kind: chatKindOf(chat)
})

/** The peer to name a known chat by in calls, without asking Telegram. */
export const inputPeerOf = (chat: ChatIdentity): Api.TypeInputPeer =>
  chat.kind === "group"
    ? new Api.InputPeerChat({ chatId: helpers.returnBigInt(chat.channelId) })
    : new Api.InputPeerChannel({
      channelId: helpers.returnBigInt(chat.channelId),
      accessHash: helpers.returnBigInt(chat.accessHash ?? "0")
    })

const notFound = (reference: ChatReference, detail: string) =>
  new TelegramCallError({ method: "resolve", detail: `${reference.text}: ${detail}` })

const fromUsername = (gram: GramJs, reference: Extract<ChatReference, { _tag: "Username" }>) =>
  gram.invoke(new Api.contacts.ResolveUsername({ username: reference.username })).pipe(
    Effect.flatMap((resolved) => {
      const chat = resolved.chats.find((candidate) => candidate instanceof Api.Channel || candidate instanceof Api.Chat)
      return chat === undefined
        ? Effect.fail(notFound(reference, "this username is a user or bot, not a channel or group"))
        : Effect.succeed(identityOf(chat as Api.Chat | Api.Channel))
    })
  )

/** The account's dialogs, paged as Telegram asks (by the last dialog's date, id and peer). */
export const listDialogs = (gram: GramJs): Effect.Effect<ReadonlyArray<Api.Chat | Api.Channel>, CallError> =>
  Effect.gen(function*() {
    const found = new Map<number, Api.Chat | Api.Channel>()
    let offsetDate = 0
    let offsetId = 0
    let offsetPeer: Api.TypeInputPeer = new Api.InputPeerEmpty()
    for (let page = 0; page < 50; page++) {
      const result: Api.messages.TypeDialogs = yield* gram.invoke(
        new Api.messages.GetDialogs({ offsetDate, offsetId, offsetPeer, limit: 100, hash: helpers.returnBigInt(0) })
      )
      if (result instanceof Api.messages.DialogsNotModified) break
      for (const chat of result.chats) {
        if (chat instanceof Api.Channel || chat instanceof Api.Chat) found.set(toNumber(chat.id), chat)
      }
      const last = result.dialogs[result.dialogs.length - 1]
      if (!(result instanceof Api.messages.DialogsSlice) || last === undefined) break
      const topMessage = result.messages.find((message) => "id" in message && message.id === last.topMessage)
      offsetDate = topMessage !== undefined && "date" in topMessage ? topMessage.date ?? 0 : 0
      offsetId = last.topMessage
      const peerChat: Api.TypeChat | undefined = result.chats.find((chat) => "id" in chat && String(chat.id) === String(peerId(last.peer)))
      offsetPeer = peerChat instanceof Api.Channel
        ? new Api.InputPeerChannel({ channelId: peerChat.id, accessHash: peerChat.accessHash ?? helpers.returnBigInt(0) })
        : peerChat instanceof Api.Chat
        ? new Api.InputPeerChat({ chatId: peerChat.id })
        : new Api.InputPeerEmpty()
    }
    return [...found.values()]
  })

const peerId = (peer: Api.TypePeer) =>
  peer instanceof Api.PeerChannel ? peer.channelId : peer instanceof Api.PeerChat ? peer.chatId : peer.userId

const fromDialogs = (gram: GramJs, reference: Extract<ChatReference, { _tag: "Id" }>) =>
  listDialogs(gram).pipe(
    Effect.flatMap((chats) => {
      const chat = chats.find((candidate) =>
        toNumber(candidate.id) === reference.id &&
        (reference.kind === "any" || (reference.kind === "group") === (candidate instanceof Api.Chat))
      )
      return chat === undefined
        ? Effect.fail(notFound(reference, "the account has no such chat among its dialogs; join it first"))
        : Effect.succeed(identityOf(chat))
    })
  )

/**
 * The chat a reference names: from the registry when known (no call to
 * Telegram), else resolved once and remembered.
 */
export const resolveChat = Effect.fn("ChannelRegistry.resolve")(function*(
  gram: GramJs,
  reference: ChatReference,
  known: ReadonlyArray<KnownChat>
) {
  const registry = yield* ChannelRegistry
  const existing = known.find((chat) => matches(reference, chat))
  if (existing !== undefined) return existing
  const identity = reference._tag === "Username" ? yield* fromUsername(gram, reference) : yield* fromDialogs(gram, reference)
  // Never resolve again because PostgreSQL was slow: retry remembering, and
  // at worst keep the identity for this process only.
  yield* registry.remember(identity).pipe(
    Effect.retry(Schedule.exponential("200 millis").pipe(Schedule.upTo({ times: 5 }))),
    Effect.catch((error) =>
      Effect.logWarning(`${reference.text} resolved but not remembered (${error.message}): the next start resolves it again`)
    )
  )
  yield* Effect.logInfo(`resolved ${reference.text} to ${identity.kind} ${identity.channelId} (${identity.title ?? "untitled"})`)
  return identity satisfies KnownChat
})
