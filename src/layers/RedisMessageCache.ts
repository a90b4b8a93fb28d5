/**
 * `MessageCache` on Redis through ioredis. The tier is optional, so the client
 * is built never to wait: the layer comes up with Redis down, commands fail at
 * once while disconnected, ioredis reconnects by itself forever, and every
 * failure or timeout is a `CacheUnavailable`. The key schema and the scripts'
 * steps are documented in docs/redis-keys.md.
 */
import { type Array as Arr, Duration, Effect, Layer, Option, Redacted, Result, Schema } from "effect"
import { Redis } from "ioredis"
import {
  type ChannelId,
  eventKey,
  encodeMessageEventJson,
  type MessageEvent,
  MessageEventJson,
  MessageId,
  messageVersion
} from "../domain/Message.ts"
import { RedisConfig } from "../services/GatewayConfig.ts"
import { describeCause } from "../domain/DescribeCause.ts"
import { CacheUnavailable, type DedupVerdict, MessageCache } from "../services/MessageCache.ts"
import { recentLua, rememberChunk, rememberLua } from "./RedisScripts.ts"

/** Reconnection backoff: 100 ms doubling up to this, plus up to 100 ms of jitter. */
const reconnectMaxDelayMs = 2_000
/**
 * With sentinels a reconnection first asks a sentinel where the master is,
 * which is cheap: the cap is lower, so the client reaches a promoted replica
 * within half a second of the promotion.
 */
const sentinelReconnectMaxDelayMs = 500
/**
 * The wait before reconnection attempt `attempt` (1 for the first), for
 * ioredis's `retryStrategy`, which asks synchronously: `random` in [0, 1)
 * spreads the gateways' reconnections after a Redis restart.
 */
export const reconnectDelayMs = (attempt: number, sentinels: boolean, random: number = Math.random()): number =>
  Math.min(100 * 2 ** Math.min(attempt - 1, 10), sentinels ? sentinelReconnectMaxDelayMs : reconnectMaxDelayMs) +
  Math.floor(random * 100)

/** A TCP connect that neither succeeds nor fails (a blackholed host) is abandoned after this. */
const connectTimeoutMs = 2_000
/** No byte for this long while replies are owed: the socket is dead, drop it and reconnect. */
const socketTimeoutMs = 5_000
/** Upper bound on waiting for the first connection while the layer is built. */
const startupWaitMs = 2_000

/** One call's arguments: the header, then five per event (RedisScripts.ts, `rememberLua`). */
type RememberArgs = Array<string | number>

interface ScriptedRedis extends Redis {
  // ioredis flattens an array argument into the command's arguments.
  gatewayRemember(args: RememberArgs): Promise<Array<number>>
  gatewayRecent(recentKey: string, limit: number, msgPrefix: string): Promise<Array<string>>
}

/**
 * With `redis.sentinels`, ioredis asks the sentinels for the master named
 * `redis.sentinelMasterName`, and again after every disconnection. ioredis's
 * failover detector stays off: it forces a second reconnection on
 * `+switch-master` even when the client has just reached the new master,
 * which the gateway would see as a second outage.
 */
const sentinelOptions = (config: RedisConfig) =>
  config.sentinels.length === 0 ? {} : {
    sentinels: config.sentinels.map(({ host, port }) => ({ host, port })),
    name: config.sentinelMasterName,
    ...Option.match(config.sentinelPassword, {
      onNone: () => ({}),
      onSome: (password) => ({ sentinelPassword: Redacted.value(password) })
    }),
    sentinelRetryStrategy: (attempt: number) => Math.min(100 * 2 ** Math.min(attempt - 1, 10), sentinelReconnectMaxDelayMs)
  }

const connect = (config: RedisConfig): ScriptedRedis =>
  new Redis(Redacted.value(config.url), {
    ...sentinelOptions(config),
    lazyConnect: false,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    retryStrategy: (attempt) => reconnectDelayMs(attempt, config.sentinels.length > 0),
    connectTimeout: connectTimeoutMs,
    socketTimeout: socketTimeoutMs,
    connectionName: "telegram-gateway",
    commandTimeout: Duration.toMillis(config.timeout),
    // No auto-pipelining: the hot path already sends one command per batch of
    // events, and a pipeline per tick (with its promise and reply collection)
    // cost more than it saved: Redis p50/p99 0.9/9 ms against 1.9/16 ms at
    // 1,000 msg/s, 7/39 against 12/67 at 5,000 (docs/benchmarks.md, eleventh pass).
    enableAutoPipelining: false,
    scripts: {
      gatewayRemember: { lua: rememberLua, numberOfKeys: 0 },
      gatewayRecent: { lua: recentLua, numberOfKeys: 1 }
    }
  }) as ScriptedRedis

/** Waits for the first connection to succeed or fail, never longer than `startupWaitMs`. */
const firstAttempt = (client: Redis) =>
  Effect.callback<void>((resume) => {
    if (client.status === "ready") return resume(Effect.void)
    const settle = () => {
      client.off("ready", settle).off("close", settle)
      resume(Effect.void)
    }
    client.once("ready", settle).once("close", settle)
    return Effect.sync(() => client.off("ready", settle).off("close", settle))
  }).pipe(Effect.timeout(startupWaitMs), Effect.ignore)

const decodeEvent = Schema.decodeUnknownResult(MessageEventJson)
const decodeMessageId = Schema.decodeUnknownOption(MessageId)

export const make = Effect.gen(function*() {
  const config = yield* RedisConfig
  const prefix = config.keyPrefix
  const timeout = config.timeout
  const dedupTtlMs = Duration.toMillis(config.dedupTtl)
  const maxAgeMs = Duration.toMillis(config.recentMaxAge)
  const msgPrefix = `${prefix}msg:`

  // The last connection error, to say why a command failed while disconnected.
  // The listener also keeps ioredis from printing "Unhandled error event" on
  // every failed reconnect; the ingestion program logs once per outage.
  let lastError: unknown = undefined
  const client = yield* Effect.acquireRelease(
    Effect.sync(() => {
      const client = connect(config)
      client.on("error", (error) => lastError = error).on("ready", () => lastError = undefined)
      return client
    }),
    (client) =>
      Effect.tryPromise(() => client.quit()).pipe(
        Effect.timeout(timeout),
        Effect.ignore,
        Effect.ensuring(Effect.sync(() => client.disconnect()))
      )
  )
  yield* firstAttempt(client)

  const explain = (cause: unknown): unknown =>
    client.status === "ready"
      ? cause
      : new Error(
        `not connected (${client.status}${lastError === undefined ? "" : `; last error: ${describeCause(lastError)}`})`,
        { cause }
      )

  /**
   * One command, bounded by `redis.timeout` through ioredis's own
   * `commandTimeout` (a timer per command, where an Effect timeout would race
   * two fibers per command); every failure is a `CacheUnavailable`.
   */
  const run = <A>(operation: string, command: () => Promise<A>) =>
    Effect.tryPromise({
      try: command,
      catch: (cause) =>
        new CacheUnavailable({
          operation,
          cause: explain(
            cause instanceof Error && cause.message === "Command timed out"
              ? new Error(`no reply within ${Duration.format(timeout)}`)
              : cause
          )
        })
    })

  /**
   * One call of the remember script for `events[start..end)`: the dedup
   * check and cache write of each, in order, in one EVALSHA (so one command,
   * one reply and one `commandTimeout` timer for them all).
   */
  const rememberCall = (events: ReadonlyArray<MessageEvent>, start: number, end: number) => {
    const args: RememberArgs = [prefix, dedupTtlMs, maxAgeMs, config.recentLimit]
    for (let index = start; index < end; index++) {
      const event = events[index]!
      if (event._tag === "MessageDeleted") {
        args.push(event.channelId, event.messageId, -1, eventKey(event), encodeMessageEventJson(event))
      } else {
        const message = event.message
        args.push(message.channelId, message.messageId, messageVersion(message), eventKey(event), encodeMessageEventJson(event))
      }
    }
    return client.gatewayRemember(args)
  }

  /**
   * Every event of a batch, in calls of at most `rememberChunk` events issued
   * one after another on the one connection: Redis runs them in that order,
   * so a key repeated anywhere in the batch is "new" once, then "duplicate".
   * Verdicts in the order of the events.
   */
  const rememberBatch = (events: ReadonlyArray<MessageEvent>): Promise<Array<DedupVerdict>> => {
    if (events.length <= rememberChunk) return rememberCall(events, 0, events.length).then(verdictsOf)
    const calls: Array<Promise<Array<number>>> = []
    for (let start = 0; start < events.length; start += rememberChunk) {
      calls.push(rememberCall(events, start, Math.min(start + rememberChunk, events.length)))
    }
    return Promise.all(calls).then((replies) => verdictsOf(replies.flat()))
  }

  const verdictsOf = (replies: ReadonlyArray<number>): Array<DedupVerdict> => {
    const verdicts = new Array<DedupVerdict>(replies.length)
    for (let index = 0; index < replies.length; index++) verdicts[index] = replies[index] === 1 ? "new" : "duplicate"
    return verdicts
  }

  // No span: these run for every batch, thousands of times a second at full
  // speed, and a span and a captured stack per call cost more than the call.
  const remember = (event: MessageEvent) => Effect.map(run("remember", () => rememberBatch([event])), (verdicts) => verdicts[0]!)

  /** Many events in one round trip. */
  const rememberAll = (events: Arr.NonEmptyReadonlyArray<MessageEvent>) => run("remember", () => rememberBatch(events))

  const recent = Effect.fn("MessageCache.recent")(function*(channelId: ChannelId, limit: number) {
    // Nothing past `recentLimit` is kept, so asking for more cannot find more.
    const count = Math.min(Math.floor(limit), config.recentLimit)
    if (!(count > 0)) return []
    const reply = yield* run("recent", () => client.gatewayRecent(`${prefix}recent:${channelId}`, count, msgPrefix))
    const events: Array<MessageEvent> = []
    const unreadable: Array<string> = []
    for (let i = 0; i + 1 < reply.length; i += 2) {
      const member = reply[i]!
      const decoded = decodeEvent(reply[i + 1])
      // An entry that does not decode, or decodes to another event than its
      // key names, is skipped (and left alone: it may be a newer writer's format).
      if (Result.isSuccess(decoded) && eventKey(decoded.success) === member) events.push(decoded.success)
      else unreadable.push(member)
    }
    if (unreadable.length > 0) {
      yield* Effect.logWarning("Skipped unreadable entries in the Redis recent index").pipe(
        Effect.annotateLogs({ channelId, keys: unreadable.map((member) => `${msgPrefix}${member}`) })
      )
    }
    return events
  })

  const get = Effect.fn("MessageCache.get")(function*(key: string) {
    const body = yield* run("get", () => client.get(`${msgPrefix}${key}`))
    if (body === null) return Option.none()
    const decoded = decodeEvent(body)
    if (Result.isSuccess(decoded)) return Option.some(decoded.success)
    yield* Effect.logWarning("Unreadable cached event treated as not cached").pipe(
      Effect.annotateLogs({ key: `${msgPrefix}${key}`, error: decoded.failure.message })
    )
    return Option.none()
  })

  const lastSeenMessageId = Effect.fn("MessageCache.lastSeenMessageId")(function*(channelId: ChannelId) {
    const value = yield* run("lastSeenMessageId", () => client.get(`${prefix}last:${channelId}`))
    return value === null ? Option.none() : decodeMessageId(Number(value))
  })

  const ping = run("ping", () => client.ping()).pipe(Effect.asVoid, Effect.withSpan("MessageCache.ping"))

  return MessageCache.of({ remember, rememberAll, recent, get, lastSeenMessageId, ping })
})

export const layer = Layer.effect(MessageCache, make)
