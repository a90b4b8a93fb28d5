import { assert, describe, layer } from "@effect/vitest"
import { ConfigProvider, Effect, Schedule, Schema } from "effect"
import { HttpClient } from "effect/http"
import {
  ChannelId,
  MessageCreated,
  MessageDeleted,
  MessageEdited,
  MessageId,
  Sender,
  TelegramMessage
} from "../../src/domain/Message.ts"
import * as RedisMessageCache from "../../src/layers/RedisMessageCache.ts"
import { EventPage } from "../../src/programs/api/Api.ts"
import { encodeCursor } from "../../src/programs/api/Cursor.ts"
import { client, insertChannel, insertDeletion, insertMessage, Keys, layerTestApi, sql, TestApi } from "./TestApi.ts"

const channel = ChannelId.make(777_001)
const other = ChannelId.make(777_002)

/** What every test reads, inserted once per suite database, so that each test also runs alone. */
const seed = Effect.gen(function*() {
  const [seeded] = yield* sql(`SELECT count(*)::int AS n FROM channels WHERE channel_id = ${channel}`)
  if (seeded?.n !== 0) return
  yield* insertChannel(channel, "signals")
  yield* insertChannel(other, "quiet")
  yield* insertMessage({ channelId: channel, messageId: 1, text: "BUY BTCUSDT at 60000" })
  yield* insertMessage({ channelId: channel, messageId: 2, text: "SELL ETHUSDT at 3000" })
  yield* insertMessage({ channelId: channel, messageId: 1, version: 1_767_607_300, text: "BUY BTCUSDT at 61000 (edited)" })
  yield* insertMessage({ channelId: channel, messageId: 3, text: "Привет мир: купить BTC" })
  yield* insertDeletion(channel, 2, "2026-01-05T11:00:00Z")
})

describe("Gateway API", () => {
  layer(layerTestApi(), { timeout: "60 seconds" })((it) => {
    it.effect("serves events in order with edits and deletions, and a cursor that resumes", () =>
      Effect.gen(function*() {
        yield* seed
        const reader = yield* client(Keys.reader)
        // A transaction open elsewhere on the cluster (another suite, a benchmark) holds
        // the events written after it began back until it ends (the watermark,
        // docs/api.md): poll again, as a consumer would, until the page is whole.
        const page = yield* reader.read.events({ query: { channelId: channel } }).pipe(
          Effect.repeat({ until: (page) => page.events.length === 5, schedule: Schedule.spaced("100 millis"), times: 350 })
        )
        assert.deepStrictEqual(page.events.map((event) => event.key), [
          `${channel}:1:0`,
          `${channel}:2:0`,
          `${channel}:1:1767607300`,
          `${channel}:3:0`,
          `${channel}:2:deleted`
        ])
        assert.deepStrictEqual(page.events.map((event) => event.kind), ["new", "new", "edited", "new", "deleted"])
        assert.strictEqual(page.events[3]?.message?.text, "Привет мир: купить BTC")
        const first = page.events[1]!
        const resumed = yield* reader.read.events({ query: { after: first.cursor, limit: 2 } })
        assert.deepStrictEqual(resumed.events.map((event) => event.key), [`${channel}:1:1767607300`, `${channel}:3:0`])
        const rest = yield* reader.read.events({ query: { after: resumed.nextCursor } })
        assert.deepStrictEqual(rest.events.map((event) => event.key), [`${channel}:2:deleted`])
        const empty = yield* reader.read.events({ query: { after: rest.nextCursor } })
        assert.deepStrictEqual(empty.events, [])
        assert.strictEqual(empty.nextCursor, rest.nextCursor)
      }))

    it.effect("answers a poll with exactly the JSON that encoding its EventPage gives", () =>
      Effect.gen(function*() {
        yield* seed
        const response = yield* HttpClient.get(`/api/v1/messages?channelId=${channel}`, {
          headers: { "x-api-key": Keys.reader }
        })
        assert.strictEqual(response.status, 200)
        assert.include(response.headers["content-type"], "application/json")
        const body = yield* response.text
        const page = yield* Schema.decodeUnknownEffect(EventPage)(JSON.parse(body))
        assert.deepStrictEqual(page.events.map((event) => event.kind), ["new", "new", "edited", "new", "deleted"])
        assert.strictEqual(body, JSON.stringify(yield* Schema.encodeEffect(EventPage)(page)))
      }))

    it.effect("answers polls that arrive together each with its own page", () =>
      Effect.gen(function*() {
        yield* seed
        const reader = yield* client(Keys.reader)
        const all = yield* reader.read.events({ query: {} })
        const cursors = [undefined, ...all.events.map((event) => event.cursor)]
        const polls = cursors.flatMap((after) =>
          [channel, other, undefined].flatMap((channelId) =>
            [1, 2, 100].map((limit) => ({
              ...(after === undefined ? {} : { after }),
              ...(channelId === undefined ? {} : { channelId }),
              limit
            }))
          )
        )
        const keys = (page: { readonly events: ReadonlyArray<{ readonly key: string }> }) => page.events.map((event) => event.key)
        const oneByOne = yield* Effect.forEach(polls, (query) => reader.read.events({ query }))
        const together = yield* Effect.forEach(polls, (query) => reader.read.events({ query }), { concurrency: "unbounded" })
        assert.deepStrictEqual(together.map(keys), oneByOne.map(keys))
        assert.deepStrictEqual(together.map((page) => page.nextCursor), oneByOne.map((page) => page.nextCursor))
        assert.isAbove(oneByOne.filter((page) => page.events.length > 0).length, polls.length / 3)
      }))

    it.effect("returns a message with all its versions", () =>
      Effect.gen(function*() {
        yield* seed
        const reader = yield* client(Keys.reader)
        const history = yield* reader.read.message({ params: { channelId: channel, messageId: MessageId.make(1) } })
        assert.deepStrictEqual(history.versions.map((v) => v.message.text), ["BUY BTCUSDT at 60000", "BUY BTCUSDT at 61000 (edited)"])
        assert.isNull(history.deletedAt)
        const deleted = yield* reader.read.message({ params: { channelId: channel, messageId: MessageId.make(2) } })
        assert.strictEqual(deleted.deletedAt, "2026-01-05T11:00:00.000Z")
        const missing = yield* reader.read.message({ params: { channelId: channel, messageId: MessageId.make(99) } }).pipe(Effect.flip)
        assert.strictEqual(missing._tag, "NotFound")
        assert.strictEqual((missing as { code: string }).code, "message_not_found")
        const unknown = yield* reader.read.message({ params: { channelId: ChannelId.make(5), messageId: MessageId.make(1) } }).pipe(Effect.flip)
        assert.strictEqual((unknown as { code: string }).code, "unknown_channel")
      }))

    it.effect("lists channels with their freshness", () =>
      Effect.gen(function*() {
        yield* seed
        const reader = yield* client(Keys.reader)
        const { channels } = yield* reader.read.channels()
        const signals = channels.find((c) => c.channelId === channel)
        assert.strictEqual(signals?.username, "signals")
        assert.strictEqual(signals?.lastMessageId, 3)
        assert.isTrue((signals?.lagSeconds ?? -1) > 0)
        assert.isNull(channels.find((c) => c.channelId === other)?.lastMessageAt)
      }))

    it.effect("searches current text in any language, not deleted or superseded versions", () =>
      Effect.gen(function*() {
        yield* seed
        const reader = yield* client(Keys.reader)
        const cyrillic = yield* reader.read.search({ query: { q: "купить" } })
        assert.deepStrictEqual(cyrillic.hits.map((hit) => hit.messageId), [3])
        const edited = yield* reader.read.search({ query: { q: "61000" } })
        assert.deepStrictEqual(edited.hits.map((hit) => hit.messageId), [1])
        const superseded = yield* reader.read.search({ query: { q: "60000" } })
        assert.deepStrictEqual(superseded.hits, [])
        const deleted = yield* reader.read.search({ query: { q: "ETHUSDT" } })
        assert.deepStrictEqual(deleted.hits, [])
      }))

    it.effect("counts messages, edits and deletions per window", () =>
      Effect.gen(function*() {
        yield* seed
        const reader = yield* client(Keys.reader)
        const { buckets } = yield* reader.read.counts({
          query: { from: "2026-01-05T09:00:00Z", to: "2026-01-05T12:00:00Z", bucket: "hour", channelId: channel }
        })
        assert.deepStrictEqual(buckets.map((b) => [b.start, b.messages, b.edits, b.deletions]), [
          ["2026-01-05T09:00:00.000Z", 0, 0, 0],
          ["2026-01-05T10:00:00.000Z", 3, 1, 0],
          ["2026-01-05T11:00:00.000Z", 0, 0, 1]
        ])
      }))

    it.effect("serves the recent window from Redis, and the same window from PostgreSQL with Redis cut", () =>
      Effect.gen(function*() {
        yield* seed
        const { keyPrefix, postgres, redis } = yield* TestApi
        const cache = yield* RedisMessageCache.make.pipe(
          Effect.provide(ConfigProvider.layer(ConfigProvider.fromUnknown({ redis: { keyPrefix } })))
        )
        const asStored = (messageId: number, text: string, editDate: number | null = null) =>
          new TelegramMessage({
            channelId: channel,
            messageId: MessageId.make(messageId),
            date: 1_767_607_200,
            editDate,
            sender: new Sender({ id: 42, kind: "channel", name: "Signals" }),
            text,
            entities: [],
            media: null,
            replyToMessageId: null,
            groupedId: null,
            views: 10,
            forwards: 0,
            raw: { _: "message", id: messageId }
          })
        for (
          const event of [
            new MessageCreated({ message: asStored(1, "BUY BTCUSDT at 60000"), receivedAt: 1 }),
            new MessageCreated({ message: asStored(2, "SELL ETHUSDT at 3000"), receivedAt: 1 }),
            new MessageEdited({ message: asStored(1, "BUY BTCUSDT at 61000 (edited)", 1_767_607_300), receivedAt: 2 }),
            new MessageCreated({ message: asStored(3, "Привет мир: купить BTC"), receivedAt: 3 }),
            new MessageDeleted({ channelId: channel, messageId: MessageId.make(2), deletedAt: 4, receivedAt: 4 })
          ]
        ) yield* cache.remember(event)
        const reader = yield* client(Keys.reader)
        const request = { params: { channelId: channel }, query: { limit: 2 } }
        yield* postgres.cut
        const fromRedis = yield* reader.read.recent(request)
        yield* postgres.restore
        yield* redis.cut
        const fromPostgres = yield* reader.read.recent(request)
        const events = yield* reader.read.events({ query: { channelId: channel } })
        yield* redis.restore
        assert.deepStrictEqual(fromRedis.messages.map((m) => [m.messageId, m.text]), [
          [3, "Привет мир: купить BTC"],
          [1, "BUY BTCUSDT at 61000 (edited)"]
        ])
        assert.deepStrictEqual(fromPostgres, fromRedis)
        assert.strictEqual(events.events.length, 5)
      }))

    it.effect("marks processed idempotently and keeps a checkpoint per consumer", () =>
      Effect.gen(function*() {
        yield* seed
        const acker = yield* client(Keys.acker)
        const keys = [`${channel}:1:0`, `${channel}:2:deleted`]
        const first = yield* acker.ack.markProcessed({ params: { consumer: "billing" }, payload: { keys } })
        assert.deepStrictEqual({ ...first }, { marked: 2, alreadyMarked: 0, unknown: [] })
        const again = yield* acker.ack.markProcessed({ params: { consumer: "billing" }, payload: { keys: [...keys, `${channel}:3:0`] } })
        assert.deepStrictEqual({ ...again }, { marked: 1, alreadyMarked: 2, unknown: [] })
        const none = yield* acker.ack.checkpoint({ params: { consumer: "billing" } })
        assert.isNull(none.cursor)
        const reader = yield* client(Keys.reader)
        const cursor = (yield* reader.read.events({ query: { channelId: channel, limit: 2 } })).nextCursor
        const set = yield* acker.ack.setCheckpoint({ params: { consumer: "billing" }, payload: { cursor } })
        assert.strictEqual(set.cursor, cursor)
        const got = yield* acker.ack.checkpoint({ params: { consumer: "billing" } })
        assert.strictEqual(got.cursor, cursor)
        const admin = yield* client(Keys.admin)
        const { consumers } = yield* admin.admin.consumers()
        assert.deepStrictEqual(consumers.map((c) => [c.consumer, c.cursor, c.processed]), [["billing", cursor, 3]])
      }))
  })
})
