/**
 * Against the machine's real Redis (TEST_REDIS_URL, default 127.0.0.1:6379/0).
 * Every key lives under a prefix unique to this run, deleted at the end.
 */
import { afterAll, assert, describe, it, layer, vi } from "@effect/vitest"
import { Cause, ConfigProvider, Context, Effect, Exit, Layer, Option, Schedule, Schema } from "effect"
import { Redis } from "ioredis"
import { createHash, randomUUID } from "node:crypto"
import * as Net from "node:net"
import { type ChannelId, eventKey, type MessageEvent, MessageEvent as MessageEventSchema } from "../../src/domain/Message.ts"
import * as RedisMessageCache from "../../src/layers/RedisMessageCache.ts"
import { CacheUnavailable, MessageCache } from "../../src/services/MessageCache.ts"
import { rememberLua } from "../../src/layers/RedisScripts.ts"
import { sideRedis } from "../support/SideServices.ts"
import { makeTcpProxy } from "../support/TcpProxy.ts"

const redisUrl = process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379/0"
const rememberSha = createHash("sha1").update(rememberLua).digest("hex")
const prefix = `tgtest:${randomUUID().slice(0, 8)}:`
const admin = new Redis(redisUrl, { lazyConnect: true })

const scanKeys = async (pattern: string) => {
  const keys: Array<string> = []
  for await (const batch of admin.scanStream({ match: `${prefix}${pattern}`, count: 1000 })) keys.push(...batch)
  return keys
}
const keysMatching = (pattern: string) => Effect.promise(() => scanKeys(pattern))

afterAll(async () => {
  const keys = await scanKeys("*")
  if (keys.length > 0) await admin.del(...keys)
  await admin.quit()
})

const configLayer = (redis: Record<string, unknown> = {}) =>
  ConfigProvider.layer(ConfigProvider.fromUnknown({ redis: { url: redisUrl, keyPrefix: prefix, ...redis } }))

const cacheLayer = (redis: Record<string, unknown> = {}) => RedisMessageCache.layer.pipe(Layer.provide(configLayer(redis)))

/** A service instance of its own, closed with the test's scope. */
const makeCache = (redis: Record<string, unknown> = {}) => RedisMessageCache.make.pipe(Effect.provide(configLayer(redis)))

// Each test gets channels of its own, so tests sharing a layer do not see each other.
let nextChannel = 1_000_000 + Math.floor(Math.random() * 1_000_000_000)
const newChannel = () => nextChannel++ as ChannelId

const decodeEvent = Schema.decodeUnknownSync(MessageEventSchema)

const message = (channelId: number, messageId: number, options: { text?: string; editDate?: number } = {}) => ({
  channelId,
  messageId,
  date: 1_700_000_000 + messageId,
  editDate: options.editDate ?? null,
  sender: { id: 42, kind: "user", name: "Ada" },
  text: options.text ?? `message ${messageId}`,
  entities: [{ type: "bold", offset: 0, length: 3 }],
  media: null,
  replyToMessageId: null,
  groupedId: null,
  views: 7,
  forwards: null,
  raw: { _: "Message", id: messageId, nested: [1, "two", null] }
})

const created = (channelId: number, messageId: number, text?: string) =>
  decodeEvent({
    _tag: "MessageCreated",
    message: message(channelId, messageId, text === undefined ? {} : { text }),
    receivedAt: Date.now()
  })

const edited = (channelId: number, messageId: number, editDate: number, text = `edit ${editDate}`) =>
  decodeEvent({ _tag: "MessageEdited", message: message(channelId, messageId, { text, editDate }), receivedAt: Date.now() })

const deleted = (channelId: number, messageId: number) =>
  decodeEvent({ _tag: "MessageDeleted", channelId, messageId, deletedAt: Date.now(), receivedAt: Date.now() })

const keysOf = (events: ReadonlyArray<MessageEvent>) => events.map(eventKey)

const rememberAll = (cache: MessageCache["Service"], events: ReadonlyArray<MessageEvent>) =>
  Effect.forEach(events, cache.remember, { concurrency: "unbounded" })

// Real Redis, real TTLs: the live clock, not the TestClock.
layer(cacheLayer(), { timeout: "30 seconds", excludeTestServices: true })("RedisMessageCache", (it) => {
  it.effect("says new the first time an event is seen and duplicate after", () =>
    Effect.gen(function*() {
      const cache = yield* MessageCache
      const channel = newChannel()
      assert.strictEqual(yield* cache.remember(created(channel, 1)), "new")
      assert.strictEqual(yield* cache.remember(created(channel, 1)), "duplicate")
      // Another version of the same message is another event.
      assert.strictEqual(yield* cache.remember(edited(channel, 1, 1_700_000_100)), "new")
      assert.strictEqual(yield* cache.remember(deleted(channel, 1)), "new")
      assert.strictEqual(yield* cache.remember(deleted(channel, 1)), "duplicate")
    }))

  it.effect("answers a batch in one call, verdicts in the order of the events", () =>
    Effect.gen(function*() {
      const cache = yield* MessageCache
      const channel = newChannel()
      yield* cache.remember(created(channel, 2))
      const verdicts = yield* cache.rememberAll([created(channel, 1), created(channel, 2), created(channel, 3), created(channel, 1)])
      assert.deepStrictEqual(verdicts, ["new", "duplicate", "new", "duplicate"])
      assert.deepStrictEqual(keysOf(yield* cache.recent(channel, 10)), keysOf([created(channel, 3), created(channel, 2), created(channel, 1)]))
    }))

  it.effect("answers duplicates inside one batch as a sequence of calls would", () =>
    Effect.gen(function*() {
      const cache = yield* MessageCache
      const channel = newChannel()
      const verdicts = yield* cache.rememberAll([
        created(channel, 1),
        created(channel, 1),
        edited(channel, 1, 1_700_000_100),
        edited(channel, 1, 1_700_000_100),
        created(channel, 2),
        deleted(channel, 1),
        deleted(channel, 1),
        // After the deletion, in the same batch: cached, never indexed.
        edited(channel, 1, 1_700_000_200),
        created(channel, 2)
      ])
      assert.deepStrictEqual(verdicts, ["new", "duplicate", "new", "duplicate", "new", "new", "duplicate", "new", "duplicate"])
      assert.deepStrictEqual(keysOf(yield* cache.recent(channel, 10)), [`${channel}:2:0`])
      assert.deepStrictEqual(yield* cache.lastSeenMessageId(channel), Option.some(2))
      assert.isTrue(Option.isSome(yield* cache.get(`${channel}:1:1700000200`)))
    }))

  it.effect("remembers a batch far past one call's size, in order, duplicates across calls included", () =>
    Effect.gen(function*() {
      const cache = yield* MessageCache
      const channel = newChannel()
      yield* cache.remember(created(channel, 500))
      const batch = Array.from({ length: 1_000 }, (_, index) => created(channel, index + 1))
      // Message 3 again at the end of the batch, message 500 already known.
      const verdicts = yield* cache.rememberAll([created(channel, 1), ...batch.slice(1), created(channel, 3)])
      assert.strictEqual(verdicts.length, 1_001)
      verdicts.forEach((verdict, index) =>
        assert.strictEqual(verdict, index === 499 || index === 1_000 ? "duplicate" : "new", `event ${index}`)
      )
      assert.deepStrictEqual(yield* cache.lastSeenMessageId(channel), Option.some(1_000))
      const recent = yield* cache.recent(channel, 1_000)
      assert.deepStrictEqual(keysOf(recent), keysOf([...batch].reverse()))
      assert.strictEqual((yield* keysMatching(`dedup:${channel}:*`)).length, 1_000)
      const ttl = yield* Effect.promise(() => admin.pttl(`${prefix}recent:${channel}`))
      assert.isAbove(ttl, 23 * 3600 * 1000)
    }))

  it.effect("fails a batch with CacheUnavailable when the script fails in Redis", () =>
    Effect.gen(function*() {
      const cache = yield* MessageCache
      const channel = newChannel()
      // A key of the wrong type makes the script's ZRANGEBYSCORE fail.
      yield* Effect.promise(() => admin.set(`${prefix}recent:${channel}`, "not a sorted set"))
      const error = yield* Effect.flip(cache.rememberAll([created(channel, 1), created(channel, 2)]))
      assert.instanceOf(error, CacheUnavailable)
      assert.strictEqual(error.operation, "remember")
      assert.include(error.message, "WRONGTYPE")
    }))

  it.effect("keeps exactly one entry per key when the same batch arrives twice", () =>
    Effect.gen(function*() {
      const cache = yield* MessageCache
      const channel = newChannel()
      const batch = [created(channel, 1), created(channel, 2), created(channel, 3), edited(channel, 2, 1_700_000_500)]
      const redelivered = batch.map((event) => decodeEvent(Schema.encodeSync(MessageEventSchema)(event)))

      assert.deepStrictEqual(yield* rememberAll(cache, batch), ["new", "new", "new", "new"])
      assert.deepStrictEqual(yield* rememberAll(cache, redelivered), ["duplicate", "duplicate", "duplicate", "duplicate"])

      const stored = yield* keysMatching(`msg:${channel}:*`)
      assert.deepStrictEqual(stored.sort(), keysOf(batch).map((key) => `${prefix}msg:${key}`).sort())
      assert.strictEqual((yield* keysMatching(`dedup:${channel}:*`)).length, batch.length)
      // One entry per message in `recent`: its latest version.
      assert.deepStrictEqual(keysOf(yield* cache.recent(channel, 10)), keysOf([batch[2]!, batch[3]!, batch[0]!]))
    }))

  it.effect("shows each message once in recent, at its latest version, and drops deleted ones", () =>
    Effect.gen(function*() {
      const cache = yield* MessageCache
      const channel = newChannel()
      const edit1 = edited(channel, 5, 1_700_000_100)
      const edit2 = edited(channel, 5, 1_700_000_200)
      yield* rememberAll(cache, [created(channel, 4), created(channel, 5), created(channel, 6)])
      yield* cache.remember(edit2)
      // A late, older edit is cached under its own key but does not replace the newer one.
      yield* cache.remember(edit1)
      assert.deepStrictEqual(keysOf(yield* cache.recent(channel, 10)), [`${channel}:6:0`, eventKey(edit2), `${channel}:4:0`])
      assert.isTrue(Option.isSome(yield* cache.get(eventKey(edit1))))

      yield* cache.remember(deleted(channel, 5))
      assert.deepStrictEqual(keysOf(yield* cache.recent(channel, 10)), [`${channel}:6:0`, `${channel}:4:0`])
      // A version arriving after the deletion stays out of recent.
      yield* cache.remember(edited(channel, 5, 1_700_000_300))
      assert.deepStrictEqual(keysOf(yield* cache.recent(channel, 10)), [`${channel}:6:0`, `${channel}:4:0`])
      // The deletion itself is an event `get` returns.
      const deletion = yield* cache.get(`${channel}:5:deleted`)
      assert.strictEqual(Option.getOrThrow(deletion)._tag, "MessageDeleted")
    }))

  it.effect("never moves lastSeenMessageId backwards", () =>
    Effect.gen(function*() {
      const cache = yield* MessageCache
      const channel = newChannel()
      assert.isTrue(Option.isNone(yield* cache.lastSeenMessageId(channel)))
      yield* cache.remember(created(channel, 10))
      assert.deepStrictEqual(yield* cache.lastSeenMessageId(channel), Option.some(10))
      yield* cache.remember(created(channel, 5))
      yield* cache.remember(edited(channel, 7, 1_700_000_100))
      assert.deepStrictEqual(yield* cache.lastSeenMessageId(channel), Option.some(10))
      yield* rememberAll(cache, [created(channel, 30), created(channel, 12), created(channel, 29)])
      assert.deepStrictEqual(yield* cache.lastSeenMessageId(channel), Option.some(30))
    }))

  it.effect("returns an event from get exactly as it was remembered", () =>
    Effect.gen(function*() {
      const cache = yield* MessageCache
      const channel = newChannel()
      const events = [
        created(channel, 1, "nul \u0000 inside"),
        created(channel, 2, "lone surrogate \ud800 and emoji \ud83d\ude00"),
        created(channel, 3, "x".repeat(100 * 1024)),
        edited(channel, 1, 1_700_000_100, "edited \u0000"),
        deleted(channel, 2)
      ]
      yield* rememberAll(cache, events)
      for (const event of events) {
        assert.deepStrictEqual(yield* cache.get(eventKey(event)), Option.some(event))
      }
      assert.isTrue(Option.isNone(yield* cache.get(`${channel}:99:0`)))
    }))

  it.effect("skips an unreadable entry without failing the call", () =>
    Effect.gen(function*() {
      const cache = yield* MessageCache
      const channel = newChannel()
      yield* rememberAll(cache, [created(channel, 1), created(channel, 2), created(channel, 3)])
      yield* Effect.promise(() => admin.set(`${prefix}msg:${channel}:2:0`, "{not json", "KEEPTTL"))
      assert.deepStrictEqual(keysOf(yield* cache.recent(channel, 10)), [`${channel}:3:0`, `${channel}:1:0`])
      assert.isTrue(Option.isNone(yield* cache.get(`${channel}:2:0`)))
    }))

  it.effect("answers ping", () => MessageCache.use((cache) => cache.ping))
})

describe("RedisMessageCache bounds", () => {
  it.live("lists recent messages newest first, bounded by recentLimit", () =>
    Effect.gen(function*() {
      const cache = yield* makeCache({ recentLimit: 5 })
      const channel = newChannel()
      yield* Effect.forEach([3, 8, 1, 6, 2, 7, 4, 5], (id) => cache.remember(created(channel, id)))
      const ids = (events: ReadonlyArray<MessageEvent>) => keysOf(events).map((key) => Number(key.split(":")[1]))
      assert.deepStrictEqual(ids(yield* cache.recent(channel, 100)), [8, 7, 6, 5, 4])
      assert.deepStrictEqual(ids(yield* cache.recent(channel, 2)), [8, 7])
      assert.deepStrictEqual(yield* cache.recent(channel, 0), [])
      assert.deepStrictEqual(yield* cache.recent(channel, -3), [])
      assert.strictEqual(yield* Effect.promise(() => admin.zcard(`${prefix}recent:${channel}`)), 5)
      // Pushed out of the index, yet still cached under its key.
      assert.isTrue(Option.isSome(yield* cache.get(`${channel}:1:0`)))
    }))

  it.live("leaves Redis as one call per event would: verdicts, recent and its trim, last id, bodies", () =>
    Effect.gen(function*() {
      const cache = yield* makeCache({ recentLimit: 3 })
      // A fixed pseudo-random sequence over 8 messages: creations, edits, deletions, repeats.
      let seed = 12_345
      const next = (bound: number) => {
        seed ^= seed << 13
        seed ^= seed >>> 17
        seed ^= seed << 5
        return (seed >>> 0) % bound
      }
      const steps = Array.from({ length: 120 }, () => ({ kind: next(12), id: 1 + next(12), edit: 1_700_000_000 + next(3) }))
      const sequence = (channel: number) =>
        steps.map(({ edit, id, kind }) =>
          kind === 0 ? deleted(channel, id) : kind <= 3 ? edited(channel, id, edit) : created(channel, id)
        )
      const batched = newChannel()
      const oneByOne = newChannel()
      const batchVerdicts = yield* cache.rememberAll(sequence(batched) as [MessageEvent, ...Array<MessageEvent>])
      const singleVerdicts = yield* Effect.forEach(sequence(oneByOne), cache.remember)
      assert.deepStrictEqual(batchVerdicts, singleVerdicts)
      assert.include(batchVerdicts, "duplicate")

      // Each channel's keys without the channel id, to compare the two.
      const strip = (channel: number, keys: ReadonlyArray<string>) => keys.map((key) => key.replace(`${channel}:`, ""))
      const index = (channel: number) =>
        Effect.promise(() => admin.zrange(`${prefix}recent:${channel}`, "0", "-1", "WITHSCORES")).pipe(
          Effect.map((entries) => strip(channel, entries))
        )
      const bodies = (channel: number) =>
        keysMatching(`msg:${channel}:*`).pipe(
          Effect.map((keys) => strip(channel, keys.map((key) => key.slice(`${prefix}msg:`.length))).sort())
        )
      const indexed = yield* index(batched)
      // Trimmed to recentLimit (a member and its score each).
      assert.strictEqual(indexed.length, 2 * 3)
      assert.deepStrictEqual(indexed, yield* index(oneByOne))
      assert.deepStrictEqual(
        strip(batched, keysOf(yield* cache.recent(batched, 10))),
        strip(oneByOne, keysOf(yield* cache.recent(oneByOne, 10)))
      )
      assert.deepStrictEqual(yield* cache.lastSeenMessageId(batched), yield* cache.lastSeenMessageId(oneByOne))
      assert.deepStrictEqual(yield* bodies(batched), yield* bodies(oneByOne))
    }))

  it.live("forgets recent messages older than recentMaxAge", () =>
    Effect.gen(function*() {
      const cache = yield* makeCache({ recentMaxAge: "1 second" })
      const channel = newChannel()
      yield* rememberAll(cache, [created(channel, 1), created(channel, 2)])
      assert.strictEqual((yield* cache.recent(channel, 10)).length, 2)
      yield* Effect.sleep("600 millis")
      yield* cache.remember(created(channel, 3))
      yield* Effect.sleep("600 millis")
      assert.deepStrictEqual(keysOf(yield* cache.recent(channel, 10)), [`${channel}:3:0`])
      assert.isTrue(Option.isNone(yield* cache.get(`${channel}:1:0`)))
      yield* Effect.sleep("600 millis")
      assert.deepStrictEqual(yield* cache.recent(channel, 10), [])
      // The dedup window is longer than the cache: the event is still known.
      assert.strictEqual(yield* cache.remember(created(channel, 1)), "duplicate")
    }))
})

describe("RedisMessageCache outages", () => {
  const target = new URL(redisUrl)
  const upstream = { host: target.hostname, port: Number(target.port || 6379) }
  const throughProxy = (port: number) => {
    const url = new URL(redisUrl)
    url.hostname = "127.0.0.1"
    url.port = String(port)
    return url.toString()
  }
  // A long command timeout: failing fast while disconnected must not rely on it.
  const viaProxy = (port: number) => ({ url: throughProxy(port), timeout: "5 seconds" })

  /** Fails with CacheUnavailable well under a second; the outer timeout only guards against a hang. */
  const assertUnavailable = <A>(operation: string, effect: Effect.Effect<A, CacheUnavailable>, within = 500) =>
    Effect.gen(function*() {
      const started = Date.now()
      const exit = yield* effect.pipe(Effect.timeout("10 seconds"), Effect.exit)
      const elapsed = Date.now() - started
      assert.isTrue(Exit.isFailure(exit), `${operation} should fail while Redis is unreachable`)
      const error = Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined
      assert.instanceOf(error, CacheUnavailable, `${operation} failed with ${String(error)}`)
      assert.strictEqual((error as CacheUnavailable).operation, operation)
      assert.isBelow(elapsed, within, `${operation} took ${elapsed} ms`)
      return error as CacheUnavailable
    })

  const awaitRecovery = (cache: MessageCache["Service"]) =>
    Effect.gen(function*() {
      const started = Date.now()
      yield* cache.ping.pipe(Effect.retry({ schedule: Schedule.spaced("100 millis"), times: 100 }))
      return Date.now() - started
    })

  /** ioredis prints this on every failed reconnect unless an `error` listener is attached. */
  const unhandledErrorNoise = Effect.acquireRelease(
    Effect.sync(() => vi.spyOn(console, "error")),
    (spy) => Effect.sync(() => spy.mockRestore())
  ).pipe(Effect.map((spy) => () => spy.mock.calls.filter((args) => String(args[0]).includes("Unhandled error event")).length))

  it.live("fails fast while Redis is unreachable and the same instance recovers", () =>
    Effect.gen(function*() {
      const noise = yield* unhandledErrorNoise
      const proxy = yield* makeTcpProxy(upstream)
      const cache = yield* makeCache(viaProxy(proxy.port))
      const channel = newChannel()
      assert.strictEqual(yield* cache.remember(created(channel, 1)), "new")

      yield* proxy.cut
      yield* assertUnavailable("remember", cache.remember(created(channel, 2)))
      // Reconnection attempts keep failing meanwhile, silently, further and
      // further apart; commands fail at once rather than wait for the next one.
      yield* Effect.sleep("1 second")
      yield* assertUnavailable("remember", cache.remember(created(channel, 2)), 150)
      yield* assertUnavailable("recent", cache.recent(channel, 10), 150)
      yield* assertUnavailable("get", cache.get(`${channel}:1:0`), 150)
      yield* assertUnavailable("lastSeenMessageId", cache.lastSeenMessageId(channel), 150)
      const error = yield* assertUnavailable("ping", cache.ping, 150)
      // The error says why.
      assert.match(error.message, /not connected \(\w+; last error: .*ECONNREFUSED/)

      yield* proxy.restore
      const recoveredIn = yield* awaitRecovery(cache)
      assert.isBelow(recoveredIn, 5_000)
      assert.strictEqual(yield* cache.remember(created(channel, 2)), "new")
      assert.deepStrictEqual(keysOf(yield* cache.recent(channel, 10)), [`${channel}:2:0`, `${channel}:1:0`])
      assert.strictEqual(noise(), 0)
    }), { timeout: 30_000 })

  it.live("builds while Redis is unreachable and starts working once it is back", () =>
    Effect.gen(function*() {
      const proxy = yield* makeTcpProxy(upstream)
      yield* proxy.cut
      const started = Date.now()
      const cache = yield* Layer.build(cacheLayer(viaProxy(proxy.port))).pipe(
        Effect.map((context) => Context.get(context, MessageCache))
      )
      assert.isBelow(Date.now() - started, 1_000)
      yield* assertUnavailable("remember", cache.remember(created(newChannel(), 1)))

      yield* proxy.restore
      yield* awaitRecovery(cache)
      assert.strictEqual(yield* cache.remember(created(newChannel(), 1)), "new")
    }), { timeout: 30_000 })

  it.live("gives up on a command at redis.timeout when Redis stops answering", () =>
    Effect.gen(function*() {
      const proxy = yield* makeFreezingProxy(upstream)
      const cache = yield* makeCache({ url: throughProxy(proxy.port), timeout: "200 millis" })
      yield* cache.ping
      proxy.freeze()
      const error = yield* assertUnavailable("remember", cache.remember(created(newChannel(), 1)), 1_000)
      assert.include(error.message, "no reply within")
      // A batch of several calls is bounded the same way.
      const channel = newChannel()
      const batch = Array.from({ length: 300 }, (_, index) => created(channel, index + 1))
      const batchError = yield* assertUnavailable("remember", cache.rememberAll(batch as [MessageEvent, ...Array<MessageEvent>]), 1_000)
      assert.include(batchError.message, "no reply within")
    }), { timeout: 30_000 })

  it.live("loads the script again when Redis has forgotten it (NOSCRIPT)", () =>
    Effect.gen(function*() {
      // A Redis of its own: flushing the shared one's scripts would touch other clients.
      const side = yield* sideRedis(17380)
      const sideAdmin = yield* Effect.acquireRelease(
        Effect.sync(() => new Redis({ port: side.port, host: "127.0.0.1" })),
        (client) => Effect.sync(() => client.disconnect())
      )
      const cache = yield* makeCache({ url: `redis://127.0.0.1:${side.port}/0` })
      const channel = newChannel()
      assert.deepStrictEqual(yield* cache.rememberAll([created(channel, 1), created(channel, 2)]), ["new", "new"])
      yield* Effect.promise(() => sideAdmin.script("FLUSH"))
      assert.deepStrictEqual(yield* Effect.promise(() => sideAdmin.script("EXISTS", rememberSha)), [0])
      assert.deepStrictEqual(
        yield* cache.rememberAll([created(channel, 2), created(channel, 3), created(channel, 3)]),
        ["duplicate", "new", "duplicate"]
      )
      assert.deepStrictEqual(yield* Effect.promise(() => sideAdmin.script("EXISTS", rememberSha)), [1])
      assert.strictEqual(yield* cache.remember(created(channel, 4)), "new")
    }), { timeout: 30_000 })
})

/** A proxy whose replies can be withheld, as from a hung server or a silent network partition. */
const makeFreezingProxy = (target: { readonly host: string; readonly port: number }) =>
  Effect.acquireRelease(
    Effect.callback<{ server: Net.Server; sockets: Set<Net.Socket>; frozen: { value: boolean } }>((resume) => {
      const sockets = new Set<Net.Socket>()
      const frozen = { value: false }
      const server = Net.createServer((client) => {
        const upstream = Net.connect(target.port, target.host)
        sockets.add(client).add(upstream)
        client.pipe(upstream)
        upstream.on("data", (chunk) => frozen.value || client.write(chunk))
        const close = () => {
          client.destroy()
          upstream.destroy()
        }
        client.on("error", close).on("close", close)
        upstream.on("error", close).on("close", close)
      })
      server.listen(0, "127.0.0.1", () => resume(Effect.succeed({ server, sockets, frozen })))
    }),
    ({ server, sockets }) =>
      Effect.callback<void>((resume) => {
        for (const socket of sockets) socket.destroy()
        server.close(() => resume(Effect.void))
      })
  ).pipe(Effect.map(({ server, frozen }) => ({
    port: (server.address() as Net.AddressInfo).port,
    freeze: () => {
      frozen.value = true
    }
  })))
