/**
 * Benchmark of the consumer API (not a test): `npx tsx bench/api.ts`.
 *
 * A fresh database with 1,000,000 messages over 100 channels (one INSERT ...
 * SELECT generate_series), the API server in this process on a free port,
 * and 100 consumers, each polling its own channel with its own cursor over
 * keep-alive connections at a fixed total arrival rate (200, then 1,000
 * requests/s; open loop, so a slow answer does not slow the offered load).
 * The load loop is node:http: wrk is not installed here and cannot hold a
 * fixed rate anyway. Beside it, in the same run: the same poll as a direct
 * SQL query (MessageQuery through PgBouncer, no HTTP), and the processed-mark
 * latency. Prints a table, then one JSON line.
 */
import { NodeHttpServer } from "@effect/platform-node"
import * as Amqp from "amqplib"
import { ConfigProvider, Context, Effect, Layer, Redacted } from "effect"
import { HttpRouter } from "effect/http"
import { createHash } from "node:crypto"
import * as Http from "node:http"
import { createServer } from "node:http"
import { ChannelId } from "../src/domain/Message.ts"
import * as PgClient from "../src/layers/PgClient.ts"
import * as PgMessageQuery from "../src/layers/PgMessageQuery.ts"
import { encodeCursor } from "../src/programs/api/Cursor.ts"
import * as Server from "../src/programs/api/Server.ts"
import { MessageQuery } from "../src/services/MessageQuery.ts"
import { makeTestDatabase, query } from "../test/support/Database.ts"

const channels = 100
const messages = Number(process.env.BENCH_MESSAGES ?? 1_000_000)
const key = "bench-key-0123456789"
const port = 4810 + Math.floor(Math.random() * 100)
const phaseSeconds = Number(process.env.BENCH_SECONDS ?? 10)
/** Events per poll: a caught-up consumer sees a few; BENCH_PAGE=100 measures a catching-up one. */
const pageSize = Number(process.env.BENCH_PAGE ?? 10)

const percentile = (sorted: ReadonlyArray<number>, p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? NaN
const summary = (latencies: Array<number>) => {
  const sorted = latencies.sort((a, b) => a - b)
  const round = (n: number) => Math.round(n * 1000) / 1000
  return { n: sorted.length, p50: round(percentile(sorted, 0.5)), p95: round(percentile(sorted, 0.95)), p99: round(percentile(sorted, 0.99)) }
}

const agent = new Http.Agent({ keepAlive: true, maxSockets: 100 })

const request = (method: string, path: string, body?: string) =>
  new Promise<number>((resolve, reject) => {
    const started = performance.now()
    const req = Http.request({
      host: "127.0.0.1",
      port,
      method,
      path,
      agent,
      headers: { "x-api-key": key, ...(body === undefined ? {} : { "content-type": "application/json", "content-length": Buffer.byteLength(body) }) }
    }, (res) => {
      res.resume()
      res.on("end", () => res.statusCode === 200 ? resolve(performance.now() - started) : reject(new Error(`${method} ${path}: ${res.statusCode}`)))
    })
    req.on("error", reject)
    req.end(body)
  })

/** Fires `rate` requests per second for `seconds`, spread over the consumers; returns latencies in ms. */
let failures = 0

const openLoop = async (rate: number, seconds: number, next: (consumer: number) => Promise<number>) => {
  const latencies: Array<number> = []
  const pending: Array<Promise<void>> = []
  const total = rate * seconds
  const start = performance.now()
  for (let i = 0; i < total; i++) {
    const due = start + (i * 1000) / rate
    const wait = due - performance.now()
    if (wait > 1) await new Promise((r) => setTimeout(r, wait))
    pending.push(next(i % channels).then((ms) => void latencies.push(ms), () => void failures++))
  }
  await Promise.all(pending)
  return latencies
}

const program = Effect.gen(function*() {
  const database = yield* makeTestDatabase("bench_api")
  const started = performance.now()
  yield* query(database, `
    INSERT INTO messages (channel_id, message_id, version, date, sender_id, sender_kind, sender_name, text, raw, received_at)
    SELECT 1000 + g % ${channels}, g / ${channels} + 1, 0, timestamptz '2026-01-01' + g * interval '1 second',
           42, 'channel', 'Signals', 'BUY BTCUSDT @ ' || (60000 + g % 1000) || ' TP 62000 SL 59000',
           jsonb_build_object('_', 'message', 'id', g), timestamptz '2026-01-01' + g * interval '1 second'
    FROM generate_series(0, ${messages - 1}) g`)
  yield* query(database, `INSERT INTO channels (channel_id, username, kind) SELECT 1000 + g, 'c' || g, 'channel' FROM generate_series(0, ${channels - 1}) g`)
  // The polling indexes come from migration 0003_indexes (messages (event_seq), (channel_id, event_seq)).
  yield* query(database, "VACUUM ANALYZE")
  const loadSeconds = (performance.now() - started) / 1000

  const config = ConfigProvider.layer(ConfigProvider.fromUnknown({
    database: { url: Redacted.value(database.url), poolSize: 16 },
    redis: { keyPrefix: `bench_api_${port}:` },
    rabbitmq: { exchange: `bench_api_${port}` },
    api: {
      port,
      keys: [{ name: "bench", sha256: createHash("sha256").update(key).digest("hex"), scopes: ["read", "ack"] }],
      rateLimit: { perSecond: 100_000, burst: 100_000 }
    }
  }))
  // RabbitEventBus declares the exchange it is pinged through; it is this run's alone.
  yield* Effect.addFinalizer(() =>
    Effect.promise(async () => {
      const connection = await Amqp.connect("amqp://guest:guest@127.0.0.1:5672")
      await (await connection.createChannel()).deleteExchange(`bench_api_${port}`)
      await connection.close()
    }).pipe(Effect.ignore)
  )
  const serverLayer = HttpRouter.serve(Server.Routes, { disableLogger: true, disableListenLog: true }).pipe(
    // Keep idle keep-alive sockets open across phases, so no request races the server closing one.
    Layer.provide(NodeHttpServer.layer(() => {
      const server = createServer()
      server.keepAliveTimeout = 120_000
      return server
    }, { port, host: "127.0.0.1" })),
    Layer.provide(Server.layerTiers),
    Layer.provide(config)
  )
  yield* Layer.build(serverLayer)
  const directQuery = yield* Layer.build(PgMessageQuery.layer.pipe(Layer.provide(PgClient.layer), Layer.provide(config)))
  const messageQuery = Context.get(directQuery, MessageQuery)

  // Each consumer starts mid-channel, so every poll returns a full page of real rows.
  const cursors = Array.from({ length: channels }, (_, i) => encodeCursor(BigInt(messages / 2 + i)))
  const poll = (consumer: number) =>
    request("GET", `/api/v1/messages?channelId=${1000 + consumer}&limit=${pageSize}&after=${cursors[consumer]}`)
  const directPoll = (consumer: number) =>
    Effect.runPromise(Effect.gen(function*() {
      const t = performance.now()
      yield* messageQuery.events({ after: BigInt(messages / 2 + consumer), channelId: ChannelId.make(1000 + consumer), limit: pageSize })
      return performance.now() - t
    }))
  let markCounter = 0
  const mark = (consumer: number) => {
    const base = markCounter++ * 10
    const keys = Array.from({ length: 10 }, (_, i) => `${1000 + consumer}:${base + i + 1}:0`)
    return request("POST", `/api/v1/consumers/bench-${consumer}/processed`, JSON.stringify({ keys }))
  }

  const results = yield* Effect.promise(async () => {
    await openLoop(200, 2, poll) // warm-up: connections, plans, JIT
    const poll200 = summary(await openLoop(200, phaseSeconds, poll))
    const direct200 = summary(await openLoop(200, phaseSeconds, directPoll))
    const poll1000 = summary(await openLoop(1000, phaseSeconds, poll))
    const direct1000 = summary(await openLoop(1000, phaseSeconds, directPoll))
    const mark200 = summary(await openLoop(200, phaseSeconds, mark))
    return { poll200, direct200, poll1000, direct1000, mark200 }
  })

  const rows = [
    [`HTTP poll (${pageSize} events/page)`, 200, results.poll200],
    [`direct SQL poll (${pageSize} events)`, 200, results.direct200],
    [`HTTP poll (${pageSize} events/page)`, 1000, results.poll1000],
    [`direct SQL poll (${pageSize} events)`, 1000, results.direct1000],
    ["HTTP mark processed (10 keys)", 200, results.mark200]
  ] as const
  console.log(`\n${messages.toLocaleString("en")} messages over ${channels} channels, loaded in ${loadSeconds.toFixed(1)} s; ${phaseSeconds} s per phase; latencies in ms`)
  console.log(`failed requests: ${failures}`)
  console.log("| what | offered req/s | n | p50 | p95 | p99 |\n| --- | --- | --- | --- | --- | --- |")
  for (const [what, rate, s] of rows) console.log(`| ${what} | ${rate} | ${s.n} | ${s.p50} | ${s.p95} | ${s.p99} |`)
  console.log(JSON.stringify({ bench: "api", messages, channels, consumers: channels, phaseSeconds, pageSize, loadTool: "node:http open loop", failures, ...results }))
})

Effect.runPromise(Effect.scoped(program)).then(() => {
  agent.destroy()
  process.exit(0)
}, (error) => {
  console.error(error)
  process.exit(1)
})
