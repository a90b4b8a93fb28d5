import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { Api, helpers, type TelegramClient } from "telegram"
import { DeletedMessage, type DeletedMessageEvent } from "telegram/events/DeletedMessage.js"
import { EditedMessage, type EditedMessageEvent } from "telegram/events/EditedMessage.js"
import { NewMessage, type NewMessageEvent } from "telegram/events/NewMessage.js"
import { type ChannelRef, TelegramSimulator } from "../../src/simulator/index.ts"
import { connectedClient, nextEvent, promise } from "./SimulatorClient.ts"

const long = (value: number | bigint) => helpers.returnBigInt(value)
const inputChannel = (ref: ChannelRef) => new Api.InputChannel({ channelId: long(ref.id), accessHash: long(ref.accessHash) })

const channelDifference = (client: TelegramClient, ref: ChannelRef, pts: number) =>
  promise(() =>
    client.invoke(new Api.updates.GetChannelDifference({
      channel: inputChannel(ref),
      filter: new Api.ChannelMessagesFilterEmpty(),
      pts,
      limit: 100
    }))
  )

describe("TelegramSimulator updates", () => {
  it.live("pushes a new channel post to the client's NewMessage handler", () =>
    Effect.gen(function*() {
      const sim = yield* TelegramSimulator.start()
      const news = sim.world.addChannel({ username: "newsroom", title: "News", kind: "channel" })
      const client = yield* connectedClient(sim)
      yield* promise(() => client.getMe())
      const received = nextEvent<NewMessageEvent>(client, new NewMessage({}))

      sim.world.post(news, { text: "breaking", entities: [new Api.MessageEntityBold({ offset: 0, length: 8 })] })

      const event = yield* promise(() => received)
      assert.strictEqual(event.message.message, "breaking")
      assert.strictEqual(event.message.id, 1)
      assert.strictEqual(event.message.peerId.className, "PeerChannel")
      assert.strictEqual(event.message.entities?.[0]?.className, "MessageEntityBold")
    }))

  it.live("pushes edits and deletions to the EditedMessage and DeletedMessage handlers", () =>
    Effect.gen(function*() {
      const sim = yield* TelegramSimulator.start()
      const group = sim.world.addChannel({ username: "chatroom", title: "Chat", kind: "supergroup" })
      sim.world.post(group, { text: "first" })
      sim.world.post(group, { text: "second" })
      const client = yield* connectedClient(sim)
      yield* promise(() => client.getMe())

      const edited = nextEvent<EditedMessageEvent>(client, new EditedMessage({}))
      sim.world.edit(group, 1, "first, corrected")
      const editEvent = yield* promise(() => edited)
      assert.strictEqual(editEvent.message.id, 1)
      assert.strictEqual(editEvent.message.message, "first, corrected")
      assert.isNumber(editEvent.message.editDate)

      const deleted = nextEvent<DeletedMessageEvent>(client, new DeletedMessage({}))
      sim.world.delete(group, [1, 2])
      const deleteEvent = yield* promise(() => deleted)
      assert.deepStrictEqual(deleteEvent.deletedIds, [1, 2])
      assert.strictEqual((deleteEvent.peer as Api.PeerChannel | undefined)?.channelId.toString(), String(group.id))
      assert.strictEqual(sim.world.channel(group).pts, 1 + 2 + 1 + 2)
    }))

  it.live("hides skipped updates from the push stream but returns them from getChannelDifference", () =>
    Effect.gen(function*() {
      const sim = yield* TelegramSimulator.start()
      const news = sim.world.addChannel({ username: "newsroom", title: "News", kind: "channel" })
      sim.world.post(news, { text: "seen" })
      const client = yield* connectedClient(sim)
      yield* promise(() => client.getMe())
      const pushed: Array<string> = []
      client.addEventHandler((event: NewMessageEvent) => void pushed.push(event.message.message), new NewMessage({}))
      const knownPts = sim.world.channel(news).pts

      sim.faults.skipUpdates(2)
      sim.world.post(news, { text: "missed 1" })
      sim.world.post(news, { text: "missed 2" })
      sim.world.edit(news, 1, "seen, edited")
      const afterGap = nextEvent<EditedMessageEvent>(client, new EditedMessage({}))
      yield* promise(() => afterGap)

      assert.deepStrictEqual(pushed, [])
      const difference = yield* channelDifference(client, news, knownPts)
      assert.instanceOf(difference, Api.updates.ChannelDifference)
      const diff = difference as Api.updates.ChannelDifference
      assert.deepStrictEqual(diff.newMessages.map((m) => (m as Api.Message).message), ["missed 1", "missed 2"])
      assert.deepStrictEqual(diff.otherUpdates.map((u) => u.className), ["UpdateEditChannelMessage"])
      assert.strictEqual(diff.pts, knownPts + 3)
      assert.isTrue(diff.final)

      const caughtUp = yield* channelDifference(client, news, diff.pts)
      assert.instanceOf(caughtUp, Api.updates.ChannelDifferenceEmpty)
    }))

  it.live("answers channelDifferenceTooLong when the client is further behind than the limit", () =>
    Effect.gen(function*() {
      const sim = yield* TelegramSimulator.start({ differenceTooLongAfter: 5 })
      const news = sim.world.addChannel({ username: "newsroom", title: "News", kind: "channel" })
      for (let i = 1; i <= 10; i++) sim.world.post(news, { text: `m${i}` })
      const client = yield* connectedClient(sim)

      const nearlyCurrent = yield* channelDifference(client, news, 11 - 5)
      assert.instanceOf(nearlyCurrent, Api.updates.ChannelDifference)

      const tooLong = yield* channelDifference(client, news, 1)
      assert.instanceOf(tooLong, Api.updates.ChannelDifferenceTooLong)
      const result = tooLong as Api.updates.ChannelDifferenceTooLong
      assert.strictEqual((result.dialog as Api.Dialog).pts, 11)
      assert.strictEqual((result.dialog as Api.Dialog).topMessage, 10)
      assert.strictEqual((result.messages[0] as Api.Message).id, 10)
    }))
})
