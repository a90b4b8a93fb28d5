/**
 * One observer of the pipeline bench, in its own process (bench/pipeline.ts
 * forks one per role), stamping with the shared clock (Protocol.ts) the
 * first moment each event of the watched channels is visible where a
 * consumer looks:
 *
 * - `redis`: readable in Redis. Client-side caching's broadcast tracking
 *   (`CLIENT TRACKING on BCAST PREFIX <prefix>msg:`, RESP3) pushes the name of
 *   every key written under the prefix as the write completes, so nothing is
 *   polled and no server setting changes on the shared Redis.
 * - `classic`, `quorum`: delivered to a consumer of a durable queue of that
 *   type bound with `#` to each target's exchange (the gateway's and the raw
 *   harness's: each target publishes to its own, so the gateway's bus relay
 *   never sees the harness's events) (amqplib, `noDelay`, no acks).
 * - `api`: returned by a long poll of the real API process
 *   (`GET /api/v1/messages?after=…&wait=5&limit=1000`): one consumer following
 *   every event in order, its cursor kept across phases; one API process per
 *   target's database, one poller each.
 *
 * Each observer also reports its own event-loop delay p99 over the phase
 * (`perf_hooks.monitorEventLoopDelay`): a stamp can be late by that much, so
 * it is the floor under every latency it reports.
 */
import * as Amqp from "amqplib"
import * as Net from "node:net"
import { monitorEventLoopDelay } from "node:perf_hooks"
import { type FromObserver, monotonicMs, type ToObserver } from "./Protocol.ts"

const role = process.argv[2] as "redis" | "classic" | "quorum" | "api"
const keyPrefix = process.env.BENCH_KEY_PREFIX!
const exchanges = process.env.BENCH_EXCHANGES!.split(",")
const queue = process.env.BENCH_QUEUE!
const apiUrls = process.env.BENCH_API_URLS!.split(",")
const apiKey = process.env.BENCH_API_KEY!

const send = (message: FromObserver) => process.send?.(message)

let watched = new Set<string>()
const seen = new Map<string, number>()
let collecting: { readonly id: number; readonly expected: number; readonly timer: NodeJS.Timeout } | undefined

/**
 * This process's event-loop delay since the last `watch`: a timer every 10 ms
 * (Node's default; a finer one would add wake-ups to the two cores the
 * targets share). The histogram holds the whole interval between the timer's
 * runs, so the delay is that minus the 10 ms (an idle process reads 10.1-12.5
 * ms at p50-p99).
 */
const loopDelayResolutionMs = 10
const loopDelay = monitorEventLoopDelay({ resolution: loopDelayResolutionMs })
loopDelay.enable()

const finishCollect = () => {
  if (collecting === undefined) return
  clearTimeout(collecting.timer)
  send({
    type: "collected",
    id: collecting.id,
    seen: Object.fromEntries(seen),
    loopDelayP99Ms: Math.max(0, loopDelay.percentile(99) / 1e6 - loopDelayResolutionMs)
  })
  seen.clear()
  collecting = undefined
}

/** `channel:message:version` (or a Redis key ending so) seen now. */
const saw = (eventKey: string, at: number) => {
  const [channel, message] = eventKey.split(":")
  if (!watched.has(channel!)) return
  const key = `${channel}:${message}`
  if (seen.has(key)) return
  seen.set(key, at)
  if (collecting !== undefined && seen.size >= collecting.expected) finishCollect()
}

/** A RESP3 value from `buffer` at `offset`, with the offset after it; undefined while incomplete. */
const parse = (buffer: Buffer, offset: number): [unknown, number] | undefined => {
  const end = buffer.indexOf("\r\n", offset)
  if (end < 0) return undefined
  const type = String.fromCharCode(buffer[offset]!)
  const line = buffer.toString("utf8", offset + 1, end)
  let next = end + 2
  switch (type) {
    case "$":
    case "=":
    case "!": {
      const length = Number(line)
      if (length < 0) return [null, next]
      if (buffer.length < next + length + 2) return undefined
      return [buffer.toString("utf8", next, next + length), next + length + 2]
    }
    case "*":
    case ">":
    case "~":
    case "%":
    case "|": {
      const count = Number(line) * (type === "%" || type === "|" ? 2 : 1)
      const items: Array<unknown> = []
      for (let i = 0; i < count; i++) {
        const item = parse(buffer, next)
        if (item === undefined) return undefined
        items.push(item[0])
        next = item[1]
      }
      return [type === ">" ? { pushed: items } : items, next]
    }
    default:
      return [line, next]
  }
}

const observeRedis = () =>
  new Promise<void>((resolve, reject) => {
    const socket = Net.connect(6379, "127.0.0.1")
    socket.setNoDelay(true)
    let buffer = Buffer.alloc(0)
    let replies = 0
    socket.on("error", reject)
    socket.on("data", (chunk) => {
      const at = monotonicMs()
      buffer = buffer.length === 0 ? chunk : Buffer.concat([buffer, chunk])
      let offset = 0
      while (offset < buffer.length) {
        const parsed = parse(buffer, offset)
        if (parsed === undefined) break
        offset = parsed[1]
        const value = parsed[0]
        if (typeof value === "object" && value !== null && "pushed" in value) {
          const [kind, keys] = (value as { pushed: [string, Array<string> | null] }).pushed
          if (kind === "invalidate" && keys !== null) {
            for (const key of keys) saw(key.slice(keyPrefix.length + 4), at)
          }
        } else if (++replies === 2) resolve()
      }
      buffer = buffer.subarray(offset)
    })
    socket.write(`HELLO 3\r\nCLIENT TRACKING on BCAST PREFIX ${keyPrefix}msg:\r\n`)
  })

const observeQueue = async (quorum: boolean) => {
  const connection = await Amqp.connect("amqp://guest:guest@127.0.0.1:5672", { noDelay: true })
  const channel = await connection.createChannel()
  await channel.assertQueue(queue, { durable: true, ...(quorum ? { arguments: { "x-queue-type": "quorum" } } : {}) })
  for (const exchange of exchanges) {
    await channel.assertExchange(exchange, "topic", { durable: true })
    await channel.bindQueue(queue, exchange, "#")
  }
  await channel.prefetch(0)
  await channel.consume(queue, (message) => {
    if (message?.properties.messageId !== undefined) saw(message.properties.messageId as string, monotonicMs())
  }, { noAck: true })
  cleanUp = () => channel.deleteQueue(queue).then(() => connection.close()).catch(() => {})
}

/** Deletes the observer's queue, if it has one; run before the process exits. */
let cleanUp: () => Promise<void> = () => Promise.resolve()
const exit = () => void cleanUp().finally(() => process.exit(0))

/** Follows every event from the first, as one consumer of the whole feed, keeping its cursor across phases. */
const pollAll = async (apiUrl: string) => {
  let after: string | undefined
  while (true) {
    const query = `limit=1000&wait=5${after === undefined ? "" : `&after=${after}`}`
    try {
      const response = await fetch(`${apiUrl}/api/v1/messages?${query}`, { headers: { "x-api-key": apiKey } })
      const at = monotonicMs()
      if (!response.ok) throw new Error(`${response.status} ${await response.text()}`)
      const page = (await response.json()) as { events: Array<{ key: string }>; nextCursor: string }
      for (const event of page.events) saw(event.key, at)
      after = page.nextCursor
    } catch (error) {
      console.error("api observer:", error)
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }
}

process.on("message", (message: ToObserver) => {
  if (message.type === "stop") exit()
  if (message.type === "watch") {
    watched = new Set(message.channels.map(String))
    seen.clear()
    loopDelay.reset()
  }
  if (message.type === "collect") {
    collecting = { id: message.id, expected: message.expected, timer: setTimeout(finishCollect, message.timeoutMs) }
    if (seen.size >= message.expected) finishCollect()
  }
})
process.on("disconnect", exit)

const start = role === "redis"
  ? observeRedis()
  : role === "api"
  ? Promise.resolve(apiUrls.forEach((url) => void pollAll(url)))
  : observeQueue(role === "quorum")
start.then(() => send({ type: "ready" }), (error) => {
  console.error(`observer ${role}:`, error)
  process.exit(1)
})
