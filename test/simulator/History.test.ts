import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { Api, helpers } from "telegram"
import { pageHistory, TelegramSimulator } from "../../src/simulator/index.ts"
import { connectedClient, promise } from "./SimulatorClient.ts"

const long = (value: number | bigint) => helpers.returnBigInt(value)
const ids = (messages: ReadonlyArray<{ readonly id: number }>) => messages.map((m) => m.id)

describe("TelegramSimulator history", () => {
  it.live("resolves a username once and pages 250 messages newest first, 100 at a time", () =>
    Effect.gen(function*() {
      const sim = yield* TelegramSimulator.start()
      const news = sim.world.addChannel({ username: "newsroom", title: "News", kind: "channel" })
      for (let i = 1; i <= 250; i++) sim.world.post(news, { text: `message ${i}` })
      const client = yield* connectedClient(sim)

      const messages = yield* promise(() => client.getMessages("newsroom", { limit: 250 }))

      assert.deepStrictEqual(ids(messages), Array.from({ length: 250 }, (_, i) => 250 - i))
      assert.strictEqual(messages[0]?.message, "message 250")
      assert.strictEqual(sim.callCount("messages.GetHistory"), 3)
      assert.strictEqual(sim.callCount("contacts.ResolveUsername"), 1)
      yield* promise(() => client.getMessages("newsroom", { limit: 1 }))
      assert.strictEqual(sim.callCount("contacts.ResolveUsername"), 1, "the resolved channel is cached by the client")
    }))

  it.live("answers messages.ChannelMessages with the channel's pts and total count", () =>
    Effect.gen(function*() {
      const sim = yield* TelegramSimulator.start()
      const group = sim.world.addChannel({ username: "chatroom", title: "Chat", kind: "supergroup" })
      for (let i = 1; i <= 5; i++) sim.world.post(group, { text: `m${i}` })
      sim.world.delete(group, [2, 3])
      const client = yield* connectedClient(sim)
      const peer = new Api.InputPeerChannel({ channelId: long(group.id), accessHash: long(group.accessHash) })

      const result = yield* promise(() =>
        client.invoke(new Api.messages.GetHistory({ peer, offsetId: 0, addOffset: 0, limit: 10, maxId: 0, minId: 0, hash: long(0) }))
      )

      assert.instanceOf(result, Api.messages.ChannelMessages)
      const page = result as Api.messages.ChannelMessages
      assert.strictEqual(page.pts, 1 + 5 + 2)
      assert.strictEqual(page.count, 3)
      assert.deepStrictEqual(ids(page.messages), [5, 4, 1])
    }))

  it.live("refuses a channel whose access hash is wrong", () =>
    Effect.gen(function*() {
      const sim = yield* TelegramSimulator.start()
      const group = sim.world.addChannel({ username: "chatroom", title: "Chat", kind: "supergroup" })
      const client = yield* connectedClient(sim)
      const peer = new Api.InputPeerChannel({ channelId: long(group.id), accessHash: long(group.accessHash + 1n) })

      const error = yield* promise(() =>
        client.invoke(new Api.messages.GetHistory({ peer, offsetId: 0, addOffset: 0, limit: 10, maxId: 0, minId: 0, hash: long(0) }))
      ).pipe(Effect.flip)

      assert.strictEqual((error as { errorMessage?: string }).errorMessage, "CHANNEL_INVALID")
    }))

  it.live("lists channels and supergroups as dialogs", () =>
    Effect.gen(function*() {
      const sim = yield* TelegramSimulator.start()
      const news = sim.world.addChannel({ username: "newsroom", title: "News", kind: "channel" })
      const group = sim.world.addChannel({ username: "chatroom", title: "Chat", kind: "supergroup" })
      sim.world.post(news, { text: "older", date: 1_700_000_000 })
      sim.world.post(group, { text: "newer", date: 1_700_000_100 })
      const client = yield* connectedClient(sim)

      const dialogs = yield* promise(() => client.getDialogs({}))

      assert.deepStrictEqual(dialogs.map((d) => d.title), ["Chat", "News"])
      assert.deepStrictEqual(dialogs.map((d) => [d.isChannel, d.isGroup]), [[true, true], [true, false]])
      assert.strictEqual(dialogs[0]?.message?.message, "newer")
    }))

  it.live("keeps replies, albums and media on posted messages", () =>
    Effect.gen(function*() {
      const sim = yield* TelegramSimulator.start()
      const news = sim.world.addChannel({ username: "newsroom", title: "News", kind: "channel" })
      sim.world.post(news, { text: "first" })
      const geo = new Api.MessageMediaGeo({ geo: new Api.GeoPoint({ long: 13.4, lat: 52.5, accessHash: long(0) }) })
      sim.world.post(news, { text: "reply", replyTo: 1, groupedId: 9_007_199_254_740_993n, media: geo })
      const client = yield* connectedClient(sim)

      const [latest] = yield* promise(() => client.getMessages("newsroom", { limit: 1 }))

      assert.strictEqual(latest?.replyTo?.replyToMsgId, 1)
      assert.strictEqual(latest?.groupedId?.toString(), "9007199254740993")
      assert.strictEqual((latest?.media as Api.MessageMediaGeo).geo.className, "GeoPoint")
      assert.isTrue(latest?.post)
    }))

  describe("paging rules", () => {
    // Message n was sent at 1000 + 10 n.
    const history = Array.from({ length: 20 }, (_, i) => ({ id: 20 - i, date: 1000 + 10 * (20 - i) })) as unknown as Array<Api.Message>
    const page = (request: Partial<Parameters<typeof pageHistory>[1]>) =>
      ids(pageHistory(history, { offsetId: 0, addOffset: 0, limit: 100, maxId: 0, minId: 0, ...request }))

    it("starts just below offset_id", () => assert.deepStrictEqual(page({ offsetId: 15, limit: 3 }), [14, 13, 12]))
    it("shifts the start by add_offset, negative reaching newer ids", () => {
      assert.deepStrictEqual(page({ offsetId: 15, addOffset: 2, limit: 2 }), [12, 11])
      assert.deepStrictEqual(page({ offsetId: 15, addOffset: -3, limit: 4 }), [17, 16, 15, 14])
    })
    it("without offset_id, starts just below offset_date: the messages sent before it", () =>
      assert.deepStrictEqual(page({ offsetDate: 1125, limit: 2 }), [12, 11]))
    it("keeps ids strictly between min_id and max_id", () =>
      assert.deepStrictEqual(page({ minId: 5, maxId: 9 }), [8, 7, 6]))
    it("caps the limit at 100", () => {
      const many = Array.from({ length: 150 }, (_, i) => ({ id: 150 - i })) as unknown as Array<Api.Message>
      assert.strictEqual(pageHistory(many, { offsetId: 0, addOffset: 0, limit: 500, maxId: 0, minId: 0 }).length, 100)
    })
  })
})
