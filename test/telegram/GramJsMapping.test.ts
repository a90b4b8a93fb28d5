/** TL objects to domain values, and configured chat references, without a network. */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { Api, helpers } from "telegram"
import { emptyDirectory, makeDirectory, toJsonSafe, toMedia, toTelegramMessage } from "../../src/layers/GramJsMapping.ts"
import { eventsOf, sequencingOf } from "../../src/layers/GramJsUpdates.ts"
import { parseChatReference } from "../../src/services/ChatReference.ts"

const long = (value: number | string) => helpers.returnBigInt(value)

describe("GramJsMapping", () => {
  it("turns big integers into strings and bytes into base64, keeping the TL class name", () => {
    const raw = toJsonSafe(new Api.Message({
      id: 7,
      peerId: new Api.PeerChannel({ channelId: long(42) }),
      date: 1_700_000_000,
      message: "hi",
      groupedId: long("13792401234567890123")
    })) as Record<string, unknown>
    assert.strictEqual(raw._, "Message")
    assert.strictEqual(raw.groupedId, "13792401234567890123")
    assert.deepStrictEqual(raw.peerId, { _: "PeerChannel", channelId: "42" })
    assert.strictEqual(toJsonSafe(Buffer.from([1, 2, 3])), "AQID")
    assert.strictEqual(toJsonSafe(10n ** 20n), "100000000000000000000")
    assert.doesNotThrow(() => JSON.stringify(raw))
  })

  it("keeps a message's own fields in their order, without the TL bookkeeping, GramJS's private state or the class's methods", () => {
    const message = new Api.Message({
      id: 9,
      peerId: new Api.PeerChannel({ channelId: long(42) }),
      date: 1_700_000_000,
      message: "BUY",
      post: true,
      entities: [new Api.MessageEntityBold({ offset: 0, length: 3 })]
    })
    // GramJS's custom Message: methods such as `reply` are enumerable on its prototype.
    assert.isTrue(Object.keys(Object.getPrototypeOf(message)).includes("reply"))
    assert.strictEqual(
      JSON.stringify(toJsonSafe(message)),
      "{\"_\":\"Message\",\"post\":true,\"id\":9,\"peerId\":{\"_\":\"PeerChannel\",\"channelId\":\"42\"}," +
        "\"date\":1700000000,\"message\":\"BUY\",\"entities\":[{\"_\":\"MessageEntityBold\",\"offset\":0,\"length\":3}]}"
    )
    // Bound to a client, as GramJS's own message iterators leave it: the client stays out.
    message._finishInit({ parseMode: undefined } as never, new Map(), undefined)
    assert.strictEqual(
      JSON.stringify(toJsonSafe(message)),
      "{\"_\":\"Message\",\"post\":true,\"id\":9,\"peerId\":{\"_\":\"PeerChannel\",\"channelId\":\"42\"}," +
        "\"date\":1700000000,\"message\":\"BUY\",\"entities\":[{\"_\":\"MessageEntityBold\",\"offset\":0,\"length\":3}]}"
    )
  })

  it("describes photos by their largest size and voice notes by their duration, never the file", () => {
    const photo = toMedia(new Api.MessageMediaPhoto({
      photo: new Api.Photo({
        id: long(1),
        accessHash: long(1),
        fileReference: Buffer.alloc(0),
        date: 0,
        dcId: 2,
        sizes: [
          new Api.PhotoSize({ type: "s", w: 90, h: 60, size: 1_000 }),
          new Api.PhotoSizeProgressive({ type: "y", w: 1280, h: 853, sizes: [10_000, 40_000, 90_000] })
        ]
      })
    }))
    assert.deepInclude(photo, { kind: "photo", width: 1280, height: 853, size: 90_000, mimeType: "image/jpeg" })
    const voice = toMedia(new Api.MessageMediaDocument({
      document: new Api.Document({
        id: long(2),
        accessHash: long(2),
        fileReference: Buffer.alloc(0),
        date: 0,
        mimeType: "audio/ogg",
        size: long(5_000),
        dcId: 2,
        attributes: [new Api.DocumentAttributeAudio({ voice: true, duration: 4 })]
      })
    }))
    assert.deepInclude(voice, { kind: "voice", mimeType: "audio/ogg", size: 5_000, durationSeconds: 4 })
    assert.strictEqual(toMedia(undefined), null)
    assert.strictEqual(toMedia(new Api.MessageMediaPoll({ poll: undefined as never, results: undefined as never }))?.kind, "poll")
  })

  it("names senders: bots, anonymous supergroup admins, and channel posts", () => {
    const bot = new Api.User({ id: long(5), bot: true, firstName: "Signals" })
    const group = new Api.Channel({ id: long(9), title: "Desk", photo: new Api.ChatPhotoEmpty(), date: 0, megagroup: true })
    const directory = makeDirectory([bot], [group])
    const base = { peerId: new Api.PeerChannel({ channelId: long(9) }), date: 1, message: "x" }
    const fromBot = toTelegramMessage(new Api.Message({ ...base, id: 1, fromId: new Api.PeerUser({ userId: long(5) }) }), 9, directory)
    assert.deepInclude(fromBot.sender, { id: 5, kind: "bot", name: "Signals" })
    const anonymous = toTelegramMessage(new Api.Message({ ...base, id: 2, fromId: new Api.PeerChannel({ channelId: long(9) }) }), 9, directory)
    assert.deepInclude(anonymous.sender, { id: 9, kind: "anonymous", name: "Desk" })
    const entities = toTelegramMessage(
      new Api.Message({ ...base, id: 3, entities: [new Api.MessageEntityTextUrl({ offset: 0, length: 1, url: "https://t.me" })] }),
      9,
      emptyDirectory
    ).entities
    assert.deepStrictEqual(entities.map((entity) => [entity.type, entity.url]), [["textUrl", "https://t.me"]])
  })

  it("throws on a message the domain cannot hold, for the caller to count", () => {
    assert.throws(() =>
      toTelegramMessage(new Api.Message({ id: 0, peerId: new Api.PeerChannel({ channelId: long(9) }), date: -5, message: "" }), 9, emptyDirectory)
    )
  })

  it("sequences channel and common updates by pts and pts_count, and gives their events", () => {
    const message = new Api.Message({ id: 3, peerId: new Api.PeerChat({ chatId: long(77) }), date: 1, message: "hi" })
    assert.deepInclude(sequencingOf(new Api.UpdateNewMessage({ message, pts: 5, ptsCount: 1 })), { _tag: "Common", pts: 5, ptsCount: 1 })
    const short = new Api.UpdateShortChatMessage({ id: 4, fromId: long(5), chatId: long(77), message: "short", pts: 6, ptsCount: 1, date: 2 })
    assert.deepInclude(sequencingOf(short), { _tag: "Common", pts: 6 })
    const shortEvents = eventsOf(short, emptyDirectory, 1000, () => true, () => undefined)
    assert.deepStrictEqual(shortEvents.events.map((event) => event._tag), ["MessageCreated"])
    assert.strictEqual(shortEvents.topMessageId, 4)
    const deletion = new Api.UpdateDeleteChannelMessages({ channelId: long(9), messages: [1, 2], pts: 8, ptsCount: 2 })
    assert.deepInclude(sequencingOf(deletion), { _tag: "Channel", channelId: 9, pts: 8, ptsCount: 2 })
    assert.deepStrictEqual(eventsOf(deletion, emptyDirectory, 1000, () => true, () => undefined).events.map((event) => event._tag), ["MessageDeleted", "MessageDeleted"])
    assert.deepStrictEqual(eventsOf(deletion, emptyDirectory, 1000, () => false, () => undefined).events, [], "not a configured chat")
    assert.deepInclude(sequencingOf(new Api.UpdateChannelTooLong({ channelId: long(9) })), { _tag: "ChannelTooLong", channelId: 9 })
    assert.deepStrictEqual(sequencingOf(new Api.UpdateUserTyping({ userId: long(1), action: new Api.SendMessageTypingAction() })), { _tag: "Other" })
  })
})

describe("parseChatReference", () => {
  it.effect("reads @usernames, t.me links, bot-API ids and bare ids", () =>
    Effect.gen(function*() {
      assert.deepInclude(yield* parseChatReference("@newsroom"), { _tag: "Username", username: "newsroom" })
      assert.deepInclude(yield* parseChatReference("https://t.me/newsroom/123"), { _tag: "Username", username: "newsroom" })
      assert.deepInclude(yield* parseChatReference("t.me/c/1234567/89"), { _tag: "Id", id: 1234567, kind: "channel" })
      assert.deepInclude(yield* parseChatReference("-1001234567890"), { _tag: "Id", id: 1234567890, kind: "channel" })
      assert.deepInclude(yield* parseChatReference("-4567"), { _tag: "Id", id: 4567, kind: "group" })
      assert.deepInclude(yield* parseChatReference("4567"), { _tag: "Id", id: 4567, kind: "any" })
    }))

  it.effect("refuses invite links and malformed names with a message naming the entry", () =>
    Effect.gen(function*() {
      const invite = yield* Effect.flip(parseChatReference("https://t.me/+AbCdEf"))
      assert.include(invite.message, "\"https://t.me/+AbCdEf\"")
      assert.include(invite.message, "invite links")
      const short = yield* Effect.flip(parseChatReference("@ab"))
      assert.include(short.message, "not a valid username")
    }))
})
