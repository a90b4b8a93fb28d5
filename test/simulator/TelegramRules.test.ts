/**
 * The simulator behaves as Telegram does where the update engine depends on
 * it: pts_count, non-final difference chains, `timeout`, pushes dropped,
 * duplicated and reordered, CHANNEL_PRIVATE, FLOOD_WAIT on any method, the
 * common sequence's getDifference.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { Api, helpers, type TelegramClient } from "telegram"
import { FloodWaitError, RPCError } from "telegram/errors/index.js"
import { Raw } from "telegram/events/Raw.js"
import { type ChannelRef, TelegramSimulator } from "../../src/simulator/index.ts"
import { connectedClient, promise } from "./SimulatorClient.ts"

const long = (value: number | bigint) => helpers.returnBigInt(value)
const inputChannel = (ref: ChannelRef) => new Api.InputChannel({ channelId: long(ref.id), accessHash: long(ref.accessHash) })

const channelDifference = (client: TelegramClient, ref: ChannelRef, pts: number, limit = 100) =>
  promise(() =>
    client.invoke(new Api.updates.GetChannelDifference({
      channel: inputChannel(ref),
      filter: new Api.ChannelMessagesFilterEmpty(),
      pts,
      limit
    }))
  )

/** Collects the pts of every pushed channel update, in arrival order. */
const pushedPts = (client: TelegramClient) => {
  const seen: Array<number> = []
  client.addEventHandler((update: unknown) => {
    if (update instanceof Api.UpdateNewChannelMessage) seen.push(update.pts)
  }, new Raw({}))
  return seen
}

const waitFor = (condition: () => boolean) =>
  Effect.gen(function*() {
    while (!condition()) yield* Effect.sleep("10 millis")
  }).pipe(Effect.timeout("10 seconds"))

describe("TelegramSimulator as Telegram", () => {
  it.live("drops, duplicates and reorders pushes as told, with a replayable seed", () =>
    Effect.gen(function*() {
      const sim = yield* TelegramSimulator.start()
      const news = sim.world.addChannel({ username: "newsroom", title: "News", kind: "channel" })
      const client = yield* connectedClient(sim)
      yield* promise(() => client.getMe())
      const seen = pushedPts(client)

      sim.faults.pushFaults({ dropRatio: 0.2, duplicateRatio: 0.2, reorderWindow: 5, seed: 7 })
      for (let i = 0; i < 100; i++) sim.world.post(news, { text: `m${i}` })
      const delivered = 100 - sim.faults.pushesDropped
      yield* waitFor(() => new Set(seen).size === delivered)
      yield* Effect.sleep("100 millis")

      assert.isAbove(sim.faults.pushesDropped, 5)
      assert.isBelow(sim.faults.pushesDropped, 40)
      assert.isAbove(seen.length, delivered, "some pushes came twice")
      const sorted = [...seen].sort((a, b) => a - b)
      assert.notDeepEqual(seen, sorted, "some pushes came out of order")
      assert.isTrue([...new Set(seen)].every((pts) => pts >= 2 && pts <= 101))
    }))

  it.live("stops pushes entirely with dropRatio 1, while pts advances", () =>
    Effect.gen(function*() {
      const sim = yield* TelegramSimulator.start()
      const news = sim.world.addChannel({ username: "newsroom", title: "News", kind: "channel" })
      const client = yield* connectedClient(sim)
      yield* promise(() => client.getMe())
      const seen = pushedPts(client)
      sim.faults.pushFaults({ dropRatio: 1 })
      for (let i = 0; i < 10; i++) sim.world.post(news, { text: `m${i}` })
      sim.faults.pushFaults({})
      sim.world.post(news, { text: "pushed" })
      yield* waitFor(() => seen.length === 1)
      assert.deepStrictEqual(seen, [12])
    }))

  it.live("pages a long difference in non-final answers of at most `limit` updates, each with the timeout", () =>
    Effect.gen(function*() {
      const sim = yield* TelegramSimulator.start({ differenceTimeout: 7 })
      const news = sim.world.addChannel({ username: "newsroom", title: "News", kind: "channel" })
      for (let i = 0; i < 25; i++) sim.world.post(news, { text: `m${i}` })
      sim.world.edit(news, 3, "edited")
      sim.world.delete(news, [4, 5])
      const client = yield* connectedClient(sim)

      let pts = 1
      const pages: Array<{ final: boolean; count: number; timeout: number | undefined }> = []
      const messages: Array<number> = []
      const others: Array<string> = []
      while (true) {
        const answer = yield* channelDifference(client, news, pts, 10)
        assert.instanceOf(answer, Api.updates.ChannelDifference)
        const page = answer as Api.updates.ChannelDifference
        pages.push({ final: page.final === true, count: page.newMessages.length + page.otherUpdates.length, timeout: page.timeout })
        messages.push(...page.newMessages.map((m) => m.id))
        others.push(...page.otherUpdates.map((u) => u.className))
        pts = page.pts
        if (page.final === true) break
      }
      assert.deepStrictEqual(pages.map((p) => p.final), [false, false, true])
      assert.deepStrictEqual(pages.map((p) => p.count), [10, 10, 7])
      assert.isTrue(pages.every((p) => p.timeout === 7))
      assert.strictEqual(pts, 1 + 25 + 1 + 2)
      assert.strictEqual(messages.length, 25)
      assert.deepStrictEqual(others, ["UpdateEditChannelMessage", "UpdateDeleteChannelMessages"])

      sim.settings.differenceTimeout = 300
      const empty = yield* channelDifference(client, news, pts)
      assert.instanceOf(empty, Api.updates.ChannelDifferenceEmpty)
      assert.strictEqual((empty as Api.updates.ChannelDifferenceEmpty).timeout, 300)
      const ahead = yield* channelDifference(client, news, pts + 5).pipe(Effect.flip)
      assert.strictEqual((ahead as RPCError).errorMessage, "PERSISTENT_TIMESTAMP_OUTDATED")
    }))

  it.live("gives every edit its own edit_date, even many in one second", () =>
    Effect.gen(function*() {
      const sim = yield* TelegramSimulator.start()
      const news = sim.world.addChannel({ username: "newsroom", title: "News", kind: "channel" })
      sim.world.post(news, { text: "v0" })
      const dates = Array.from({ length: 5 }, (_, i) => sim.world.edit(news, 1, `v${i + 1}`).editDate ?? 0)
      assert.strictEqual(new Set(dates).size, 5)
      assert.deepStrictEqual(dates, [...dates].sort((a, b) => a - b))
    }))

  it.live("answers CHANNEL_PRIVATE for a channel made private, and FLOOD_WAIT on getChannelDifference", () =>
    Effect.gen(function*() {
      const sim = yield* TelegramSimulator.start()
      const news = sim.world.addChannel({ username: "newsroom", title: "News", kind: "channel" })
      const other = sim.world.addChannel({ username: "otherroom", title: "Other", kind: "channel" })
      const client = yield* connectedClient(sim)

      sim.faults.floodWait("updates.GetChannelDifference", 120)
      const flood = yield* channelDifference(client, other, 1).pipe(Effect.flip)
      assert.instanceOf(flood, FloodWaitError)

      sim.world.setPrivate(news)
      const refused = yield* channelDifference(client, news, 1).pipe(Effect.flip)
      assert.strictEqual((refused as RPCError).errorMessage, "CHANNEL_PRIVATE")
      const fine = yield* channelDifference(client, other, 1)
      assert.instanceOf(fine, Api.updates.ChannelDifferenceEmpty)
    }))

  it.live("answers getDifference of the common sequence from the state getState gave", () =>
    Effect.gen(function*() {
      const sim = yield* TelegramSimulator.start()
      const client = yield* connectedClient(sim)
      const state = yield* promise(() => client.invoke(new Api.updates.GetState()))
      const difference = yield* promise(() =>
        client.invoke(new Api.updates.GetDifference({ pts: state.pts, date: state.date, qts: state.qts }))
      )
      assert.instanceOf(difference, Api.updates.DifferenceEmpty)
    }))

  it.live("pushes updateChannelTooLong on demand", () =>
    Effect.gen(function*() {
      const sim = yield* TelegramSimulator.start()
      const news = sim.world.addChannel({ username: "newsroom", title: "News", kind: "channel" })
      const client = yield* connectedClient(sim)
      yield* promise(() => client.getMe())
      const seen: Array<number> = []
      client.addEventHandler((update: unknown) => {
        if (update instanceof Api.UpdateChannelTooLong) seen.push(update.pts ?? -1)
      }, new Raw({}))
      sim.world.post(news, { text: "one" })
      sim.world.announceTooLong(news)
      yield* waitFor(() => seen.length === 1)
      assert.deepStrictEqual(seen, [2])
    }))
})
