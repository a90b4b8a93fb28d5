/**
 * The ceiling for the pipeline bench (bench/pipeline.ts starts it with
 * `fork`): the gateway's three writes with its batching, in plain Node with
 * no Effect. The events received in one turn of the event loop go to Redis
 * together, as the gateway's hot-path workers take whatever events are
 * waiting: the cache's own Lua script (src/layers/RedisScripts.ts), one call
 * per at most `rememberChunk` events with the gateway's arguments, through
 * ioredis with auto-pipelining; then, per event with a "new" verdict, a
 * persistent publish on an amqplib confirm channel opened with `noDelay` (the
 * gateway's properties, its writes coalesced per pass of amqplib's
 * multiplexer as the gateway's are, src/layers/AmqpWrites.ts, to an
 * exchange of its own); and each event, at receipt, joins a PostgreSQL
 * batch, flushed at 500 rows or 10 ms after its first row by one of two
 * connections, with the store's one statement
 * (src/layers/PgMessageStore.ts, `write_events`: the shared advisory lock,
 * the transaction id, the same `json_to_recordset` INSERT), one round trip,
 * through PgBouncer. The daemon's defaults are 500 rows, 10 ms, 2
 * writers (src/services/GatewayConfig.ts). At full speed at most 20,000
 * events wait uncommitted (`ingest.queueCapacity`). A batch counts as
 * committed when it and every batch before it are written, as the gateway
 * releases its source batches (src/programs/CommitTracker.ts): a source may
 * move its position past a batch only then. Stamping each batch when its own
 * write ended, as this harness did until 2026-12-02, let a batch overtake a
 * slower one written beside it, which the gateway must not, and put its
 * commit p99 at 5,000 msg/s 3-9 times under the gateway's for that alone
 * (docs/benchmarks.md, "Ninth pass").
 *
 * Same commands and answers as the gateway process (Protocol.ts), so the
 * same observers time it.
 */
import * as Amqp from "amqplib"
import { Redis } from "ioredis"
import { coalesceWrites } from "../../src/layers/AmqpWrites.ts"
import { rememberChunk, rememberLua } from "../../src/layers/RedisScripts.ts"
import { benchText, eventAt, type FromTarget, memoryMb, monotonicMs, type PhaseCommand, type ToTarget } from "./Protocol.ts"
import { RawPg } from "./RawPg.ts"

const databaseUrl = process.env.BENCH_DATABASE_URL!
const keyPrefix = process.env.BENCH_KEY_PREFIX!
const exchange = process.env.BENCH_EXCHANGE!
const batchSize = 500
const flushIntervalMs = 10
const writers = 2
const queueCapacity = 20_000
const dedupTtlMs = 7 * 24 * 3600 * 1000
const maxAgeMs = 24 * 3600 * 1000
const recentLimit = 1000

const send = (message: FromTarget) => process.send?.(message)
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

interface Scripted extends Redis {
  gatewayRemember(args: Array<string | number>): Promise<Array<number>>
}

interface Event {
  readonly index: number
  readonly channelId: number
  readonly messageId: number
  readonly receivedAt: number
  readonly json: string
}

const makeEvent = (index: number, channelId: number, messageId: number): Event => {
  const receivedAt = Date.now()
  const message = {
    channelId,
    messageId,
    date: 1_763_000_000 + messageId,
    editDate: null,
    sender: { id: 42, kind: "channel", name: "Signals" },
    text: benchText(messageId),
    entities: [],
    media: null,
    replyToMessageId: null,
    groupedId: null,
    views: 10,
    forwards: 0,
    raw: { _: "message", id: messageId }
  }
  return { index, channelId, messageId, receivedAt, json: JSON.stringify({ _tag: "MessageCreated", message, receivedAt }) }
}

/** The store's row (PgMessageStore.ts `versionRow`). */
const row = (event: Event) => ({
  channel_id: event.channelId,
  message_id: event.messageId,
  version: 0,
  date: 1_763_000_000 + event.messageId,
  edit_date: null,
  sender_id: 42,
  sender_kind: "channel",
  sender_name: "Signals",
  text: benchText(event.messageId),
  text_escaped: false,
  entities: [],
  media: null,
  reply_to_message_id: null,
  grouped_id: null,
  views: 10,
  forwards: 0,
  raw: { _: "message", id: event.messageId },
  received_at: event.receivedAt / 1000
})

/** The store's one statement a batch (sql/0047_write_events.up.sql), the rows inlined as a literal. */
const writeSql = (events: ReadonlyArray<Event>) =>
  `SELECT write_events('${JSON.stringify(events.map(row)).replaceAll("'", "''")}'::json, NULL) AS inserted`

const main = async () => {
  const redis = new Redis("redis://127.0.0.1:6379/0", {
    enableAutoPipelining: true,
    scripts: { gatewayRemember: { lua: rememberLua, numberOfKeys: 0 } }
  }) as Scripted
  const connection = await Amqp.connect("amqp://guest:guest@127.0.0.1:5672", { noDelay: true })
  // As the gateway's bus does (src/layers/AmqpWrites.ts), so the ceiling pays the same writes.
  coalesceWrites(connection)
  const channel = await connection.createConfirmChannel()
  await channel.assertExchange(exchange, "topic", { durable: true })
  const connections = await Promise.all(Array.from({ length: writers }, () => RawPg.connect(databaseUrl)))
  const idle = [...connections]

  let commits: Array<number> = []
  let uncommitted = 0
  let onCommitted: () => void = () => {}
  const batches: Array<ReadonlyArray<Event>> = []
  let current: Array<Event> = []
  let flushTimer: NodeJS.Timeout | undefined

  /** Written batches waiting for an earlier one, by their number in the order they were flushed. */
  const written = new Map<number, ReadonlyArray<Event>>()
  let flushed = 0
  let released = 0
  const write = async (pg: RawPg, batch: ReadonlyArray<Event>, number: number) => {
    await pg.query(writeSql(batch))
    written.set(number, batch)
    const now = monotonicMs()
    for (let next = written.get(released); next !== undefined; next = written.get(released)) {
      written.delete(released++)
      for (const event of next) commits[event.index] = now
      uncommitted -= next.length
    }
    onCommitted()
  }
  const pump = () => {
    while (idle.length > 0 && batches.length > 0) {
      const pg = idle.pop()!
      const batch = batches.shift()!
      write(pg, batch, flushed++).then(() => {
        idle.push(pg)
        pump()
      }, (error) => {
        console.error("raw harness: write failed", error)
        process.exit(1)
      })
    }
  }
  const flush = () => {
    clearTimeout(flushTimer)
    flushTimer = undefined
    if (current.length === 0) return
    batches.push(current)
    current = []
    pump()
  }

  const publish = (event: Event) =>
    channel.publish(exchange, `new.${event.channelId}`, Buffer.from(event.json), {
      persistent: true,
      contentType: "application/json",
      messageId: `${event.channelId}:${event.messageId}:0`,
      type: "new",
      timestamp: Math.floor(Date.now() / 1000),
      appId: "telegram-gateway"
    }, () => {})

  /** The remember script for `events[start..end)`, with the gateway's arguments (RedisMessageCache.ts). */
  const remember = (events: ReadonlyArray<Event>, start: number, end: number) => {
    const args: Array<string | number> = [keyPrefix, dedupTtlMs, maxAgeMs, recentLimit]
    for (let index = start; index < end; index++) {
      const event = events[index]!
      args.push(event.channelId, event.messageId, 0, `${event.channelId}:${event.messageId}:0`, event.json)
    }
    redis.gatewayRemember(args).then((verdicts) => {
      for (let index = 0; index < verdicts.length; index++) if (verdicts[index] === 1) publish(events[start + index]!)
    }, (error) => console.error("raw harness: redis failed", error))
  }

  let cacheWaiting: Array<Event> = []
  const flushCache = () => {
    const events = cacheWaiting
    cacheWaiting = []
    for (let start = 0; start < events.length; start += rememberChunk) {
      remember(events, start, Math.min(start + rememberChunk, events.length))
    }
  }

  const receive = (event: Event) => {
    uncommitted++
    current.push(event)
    if (current.length >= batchSize) flush()
    else flushTimer ??= setTimeout(flush, flushIntervalMs)
    if (cacheWaiting.push(event) === 1) setImmediate(flushCache)
  }

  const runPhase = async (command: PhaseCommand) => {
    const receipts = new Array<number>(command.count).fill(0)
    commits = new Array<number>(command.count).fill(0)
    const started = monotonicMs()
    for (let index = 0; index < command.count; index++) {
      if (command.rate !== null) {
        const wait = started + (index / command.rate) * 1000 - monotonicMs()
        if (wait >= 1) await sleep(Math.floor(wait))
      } else if (uncommitted >= queueCapacity) {
        await new Promise<void>((resolve) => (onCommitted = () => uncommitted < queueCapacity && resolve()))
      } else if (index % 64 === 0) {
        // Lets replies in between, as the gateway's feeder yields to its fibers.
        await new Promise((resolve) => setImmediate(resolve))
      }
      const { channelId, messageId } = eventAt(command.channels, index)
      const event = makeEvent(index, channelId, messageId)
      receipts[index] = monotonicMs()
      receive(event)
    }
    if (uncommitted > 0) {
      await new Promise<void>((resolve) => (onCommitted = () => uncommitted === 0 && resolve()))
    }
    send({ type: "phaseDone", id: command.id, receipts, commits, memoryMb: memoryMb() })
  }

  const commands: Array<ToTarget> = []
  let wake: () => void = () => {}
  process.on("message", (message: ToTarget) => (commands.push(message), wake()))
  process.on("disconnect", () => (commands.push({ type: "stop" }), wake()))
  send({ type: "ready" })
  while (true) {
    if (commands.length === 0) await new Promise<void>((resolve) => (wake = resolve))
    const command = commands.shift()
    if (command === undefined) continue
    if (command.type === "stop") break
    await runPhase(command)
  }
  await channel.waitForConfirms().catch(() => {})
  await connection.close().catch(() => {})
  redis.disconnect()
  for (const pg of connections) pg.close()
  process.exit(0)
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
