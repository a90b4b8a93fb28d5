/**
 * Benchmark of the consumer API (not a test): `npx tsx bench/api.ts`.
 *
 * A fresh database with 1,000,000 messages over 100 channels, dated over the
 * last 12 days in a partition (or chunk) a day (one INSERT ... SELECT
 * generate_series), then the real `telegram-gateway-api` program in its
 * own process, configured through the environment, driven by autocannon
 * from this process: 100
 * consumers, one keep-alive connection each, each polling its own channel and
 * following the `nextCursor` of its previous page, at a fixed total rate.
 *
 * autocannon's rate limit releases each connection's quota for the second
 * when the connection's own one-second timer fires, and the timers of one
 * instance's connections all start together: the server then sees the whole
 * second's requests as one burst of 100 concurrent requests. Both shapes are
 * measured: "synchronised" (one instance, 100 connections, `overallRate`) and
 * "staggered" (100 one-connection instances started 10 ms apart, so arrivals
 * spread over the second as independent consumers' would). Latencies are
 * recorded per response from autocannon's `response` event (hrtime, in ms).
 * Its own histogram is not used: at a fixed rate it adds coordinated-omission
 * corrections with an expected interval of `Math.ceil(1 / rate)`, 1 ms at
 * these per-connection rates, not the real spacing.
 *
 * In the same run and in the staggered shape: the same poll as direct SQL
 * (MessageQuery.events through PgBouncer, no HTTP) from this process, and
 * the processed mark. Every measurement is repeated `BENCH_ROUNDS` times
 * (default 3) and reported as the median of the rounds; the load average is
 * printed per round. Prints a table, then one JSON line.
 *
 * Then the same poll while another key floods `/search` (8 loops) and while
 * it holds 500 long polls open, from a worker thread of this process (its
 * own event loop, as another client's would be). BENCH_TIMESCALEDB=1 runs
 * it all on the TimescaleDB side cluster (deploy/scripts/stack.sh timescaledb) with every
 * chunk older than a day compressed.
 *
 * BENCH_PHASES=a,b runs only the phases whose names contain one of those
 * words (case-insensitive, e.g. `BENCH_PHASES=search,long` for the two
 * phases of the other key), so that a run fits a short quiet window. A comma
 * inside a phase's name stays part of the word: `BENCH_PHASES="HTTP poll,
 * staggered @1000"` selects that one phase, not every HTTP poll (a whole
 * name selects only its phase).
 * BENCH_PORT sets the server's port (default: one of 20800-20899).
 *
 * Each phase also reports the CPU it cost, per answered request: the
 * server's process, this process (autocannon or the direct SQL client, and
 * the other key's thread), and the whole machine (busy cores out of all, from
 * /proc/stat: PostgreSQL and PgBouncer are the rest), so a round shows whose
 * cost sets its latency.
 *
 * The server runs as deployed (deploy/systemd/telegram-gateway-api.service):
 * with that unit's NODE_OPTIONS (its heap cap; bench/pipeline/Deployed.ts),
 * compiled JavaScript on plain Node, `telegram-gateway-api.js` from this
 * bench's own build (`npm run bench:api` compiles src/ with the bench into
 * dist-bench/ and bundles the server, as `npm run build` bundles it into
 * dist/: deploy/scripts/bundle.mjs). Run through tsx
 * (`npx tsx bench/api.ts`), or with BENCH_SERVER=tsx, it runs
 * `node --import tsx src/bin/telegram-gateway-api.ts` instead: tsx turns on
 * source maps for the process, which makes every captured stack cost more.
 *
 * BENCH_CPU_PROF=dir starts the server with `--cpu-prof --cpu-prof-dir=dir`.
 * BENCH_PGBOUNCER_SOCKET=dir (e.g. /run/telegram-gateway/pgbouncer) makes the
 * server and the direct SQL reach PgBouncer through its Unix socket instead of
 * TCP on 127.0.0.1:6434.
 */
import * as Amqp from "amqplib"
import { ConfigProvider, Context, Effect, Layer, Redacted } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import { createHash } from "node:crypto"
import { createRequire } from "node:module"
import { readFileSync } from "node:fs"
import * as Os from "node:os"
import { fileURLToPath } from "node:url"
import { Worker } from "node:worker_threads"
import { ChannelId } from "../src/domain/Message.ts"
import * as PgClient from "../src/layers/PgClient.ts"
import * as PgMessageQuery from "../src/layers/PgMessageQuery.ts"
import { encodeCursor } from "../src/programs/api/Cursor.ts"
import { MessageQuery } from "../src/services/MessageQuery.ts"
import { makeTestDatabase, timescaleCluster } from "../test/support/Database.ts"
import { firstChannelId, loadApiDataset } from "./ApiDataset.ts"
import { deployedEnvironment } from "./pipeline/Deployed.ts"

/** The part of autocannon's programmatic API used here (the package ships no types). */
interface AutocannonRequest {
  readonly method: "GET" | "POST"
  readonly headers: Record<string, string>
  readonly setupRequest: (request: Record<string, unknown>) => Record<string, unknown>
  readonly onResponse: (status: number, body: string) => void
}
interface AutocannonClient {
  readonly setRequests: (requests: ReadonlyArray<AutocannonRequest>) => void
}
interface AutocannonInstance {
  readonly on: {
    (event: "response", listener: (client: AutocannonClient, status: number, bytes: number, ms: number) => void): void
    (event: "done", listener: (result: { readonly errors: number; readonly timeouts: number }) => void): void
  }
}
type Autocannon = (options: {
  readonly url: string
  readonly connections: number
  readonly overallRate: number
  readonly duration: number
  readonly setupClient: (client: AutocannonClient) => void
  readonly histograms: Record<"latencies" | "requests" | "throughput", unknown>
}) => AutocannonInstance
const requireHere = createRequire(import.meta.url)
const autocannon = requireHere("autocannon") as Autocannon
/** hdr-histogram-js, the copy autocannon loads. */
const hdr = createRequire(requireHere.resolve("autocannon"))("hdr-histogram-js") as {
  readonly build: (options: Record<string, unknown>) => unknown
}
/**
 * Histograms for an autocannon instance, in JavaScript at one significant
 * digit: the bench records latencies itself, and autocannon's default
 * histograms (WebAssembly, five significant digits) cost a staggered phase's
 * 100 instances so much to build that this thread was busy for 70-200 ms of
 * the phase's first second, delaying the very responses it was timing.
 */
const cheapHistograms = () => {
  const build = () =>
    hdr.build({ useWebAssembly: false, numberOfSignificantValueDigits: 1, lowestDiscernibleValue: 1, highestTrackableValue: 1e11, autoResize: true })
  return { latencies: build(), requests: build(), throughput: build() }
}

const channels = 100
const messages = Number(process.env.BENCH_MESSAGES ?? 1_000_000)
/** Days of history the messages span, ending now: a partition or chunk per day. */
const historyDays = 12
const key = "bench-key-0123456789"
/** Another key, the one that floods searches or holds long polls open while `key` polls. */
const otherKey = "bench-other-key-0123456789"
/** BENCH_TIMESCALEDB=1: the database on the TimescaleDB side cluster (5439, no PgBouncer), its chunks compressed. */
const timescale = process.env.BENCH_TIMESCALEDB === "1"
/** BENCH_PORT, or one of 20800-20899 at random (so that two runs seldom collide). */
const port = process.env.BENCH_PORT === undefined ? 20800 + Math.floor(Math.random() * 100) : Number(process.env.BENCH_PORT)
const phaseSeconds = Number(process.env.BENCH_SECONDS ?? 10)
const rounds = Number(process.env.BENCH_ROUNDS ?? 3)
/** Events per poll: a consumer behind by more than a page gets full pages. */
const pageSize = Number(process.env.BENCH_PAGE ?? 10)
const cpuProfileDir = process.env.BENCH_CPU_PROF
const pgbouncerSocket = process.env.BENCH_PGBOUNCER_SOCKET
/** Every phase's name, in the order they run (`phases` below); BENCH_PHASES is read against these. */
const phaseNames = [
  "HTTP poll, staggered @200",
  "direct SQL poll, staggered @200",
  "HTTP poll, staggered @1000",
  "direct SQL poll, staggered @1000",
  "HTTP mark processed (10 keys), staggered @200",
  "HTTP poll, synchronised @200",
  "HTTP poll, synchronised @1000",
  "HTTP poll, staggered @200, other key floods /search (8 loops)",
  "HTTP poll, staggered @200, other key holds 500 long polls"
] as const
/**
 * BENCH_PHASES's words, split on commas except those inside a phase's name:
 * `HTTP poll, staggered @1000,long` is two words, the first a whole name.
 * Pieces are joined back for as long as the joined text is part of a name.
 */
const phaseWords = (spec: string, names: ReadonlyArray<string>): Array<string> => {
  const pieces = spec.split(",")
  const inName = (text: string) => names.some((name) => name.toLowerCase().includes(text.trim().toLowerCase()))
  const words: Array<string> = []
  for (let start = 0; start < pieces.length;) {
    let end = start + 1
    while (end < pieces.length && inName(pieces.slice(start, end + 1).join(","))) end++
    words.push(pieces.slice(start, end).join(",").trim().toLowerCase())
    start = end
  }
  return words.filter((word) => word !== "")
}
const phaseFilter = phaseWords(process.env.BENCH_PHASES ?? "", phaseNames)
/** A word that is a whole phase's name selects that phase alone; any other, every phase whose name contains it. */
const selected = (name: string) =>
  phaseFilter.length === 0 ||
  phaseFilter.some((word) =>
    phaseNames.some((other) => other.toLowerCase() === word) ? name.toLowerCase() === word : name.toLowerCase().includes(word)
  )

/** The database's PgBouncer URL, through the Unix socket when BENCH_PGBOUNCER_SOCKET names its directory. */
const applicationUrl = (url: string) => {
  if (pgbouncerSocket === undefined) return url
  const viaSocket = new URL(url)
  viaSocket.hostname = "localhost"
  viaSocket.searchParams.set("host", pgbouncerSocket)
  return viaSocket.toString()
}

interface Summary {
  readonly n: number
  readonly failed: number
  readonly p50: number
  readonly p95: number
  readonly p99: number
}

const round3 = (n: number) => Math.round(n * 1000) / 1000
const percentile = (sorted: ReadonlyArray<number>, p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? NaN
const summarize = (latencies: Array<number>, failed: number): Summary => {
  const sorted = latencies.sort((a, b) => a - b)
  return {
    n: sorted.length,
    failed,
    p50: round3(percentile(sorted, 0.5)),
    p95: round3(percentile(sorted, 0.95)),
    p99: round3(percentile(sorted, 0.99))
  }
}
const median = (values: ReadonlyArray<number>) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)] ?? NaN
}
const medianSummary = (runs: ReadonlyArray<Summary>): Summary => ({
  n: median(runs.map((run) => run.n)),
  failed: median(runs.map((run) => run.failed)),
  p50: median(runs.map((run) => run.p50)),
  p95: median(runs.map((run) => run.p95)),
  p99: median(runs.map((run) => run.p99))
})

/** Clock ticks a second in /proc (USER_HZ, 100 on Linux). */
const ticksPerSecond = 100
/** CPU used so far: the server's process and this one (ms), and the machine's busy and total ticks. */
const cpuNow = (serverPid: number | undefined) => {
  const server = serverPid === undefined ? NaN : (() => {
    // Fields after the command's closing parenthesis: utime and stime are the 12th and 13th.
    const stat = readFileSync(`/proc/${serverPid}/stat`, "utf8")
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / ticksPerSecond
  })()
  const own = process.cpuUsage()
  const [, ...machine] = readFileSync("/proc/stat", "utf8").split("\n", 1)[0]!.trim().split(/\s+/).map(Number)
  const idle = (machine[3] ?? 0) + (machine[4] ?? 0)
  const total = machine.slice(0, 8).reduce((sum, n) => sum + n, 0)
  return { server, bench: (own.user + own.system) / 1000, busy: total - idle, total, at: performance.now() }
}
type CpuSample = ReturnType<typeof cpuNow>
/** What a phase cost: µs of CPU per answered request, and the machine's busy cores. */
const cpuCost = (before: CpuSample, after: CpuSample, requests: number) => ({
  serverUsPerRequest: Math.round(((after.server - before.server) * 1000) / requests),
  benchUsPerRequest: Math.round(((after.bench - before.bench) * 1000) / requests),
  machineBusyCores: Math.round((((after.busy - before.busy) / (after.total - before.total)) * Os.cpus().length) * 100) / 100
})

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const loadAverage = () => Os.loadavg().map((n) => n.toFixed(2)).join(" ")

/** Each consumer's cursor, carried across phases and rounds: every poll asks for events it has not seen. */
const startSeq = (consumer: number) => BigInt(Math.floor(messages / 10) + consumer)
const httpCursors = Array.from({ length: channels }, (_, consumer) => encodeCursor(startSeq(consumer)))
const sqlCursors = Array.from({ length: channels }, (_, consumer) => startSeq(consumer))
const markCounters = Array.from({ length: channels }, () => 0)

const headers = { "x-api-key": key }
const pollRequest = (consumer: number): AutocannonRequest => ({
  method: "GET",
  headers,
  setupRequest: (request) => ({
    ...request,
    path: `/api/v1/messages?channelId=${firstChannelId + consumer}&limit=${pageSize}&after=${httpCursors[consumer]}`
  }),
  onResponse: (status, body) => {
    if (status === 200) httpCursors[consumer] = (JSON.parse(body) as { nextCursor: string }).nextCursor
  }
})
/** Ten stored events this consumer has not marked before, as a consumer marks what it has just processed. */
const markRequest = (consumer: number): AutocannonRequest => ({
  method: "POST",
  headers: { ...headers, "content-type": "application/json" },
  setupRequest: (request) => {
    const base = markCounters[consumer]!++ * 10
    const keys = Array.from({ length: 10 }, (_, i) => `${firstChannelId + consumer}:${((base + i) % (messages / channels)) + 1}:0`)
    return { ...request, path: `/api/v1/consumers/bench-${consumer}/processed`, body: JSON.stringify({ keys }) }
  },
  onResponse: () => undefined
})

type Shape = "staggered" | "synchronised"

/** One autocannon phase at `rate` requests/s in total; latencies of 2xx responses. */
const httpPhase = (shape: Shape, rate: number, makeRequest: (consumer: number) => AutocannonRequest) =>
  new Promise<Summary>((resolve) => {
    const latencies: Array<number> = []
    let failed = 0
    const instances = shape === "synchronised" ? 1 : channels
    const connections = channels / instances
    let nextConsumer = 0
    let done = 0
    const start = () => {
      const instance = autocannon({
        url: `http://127.0.0.1:${port}`,
        connections,
        overallRate: rate / instances,
        duration: phaseSeconds,
        setupClient: (client) => client.setRequests([makeRequest(nextConsumer++)]),
        histograms: cheapHistograms()
      })
      instance.on("response", (_client, status, _bytes, ms) => {
        if (status >= 200 && status < 300) latencies.push(ms)
        else failed++
      })
      instance.on("done", (result) => {
        failed += result.errors + result.timeouts
        if (++done === instances) resolve(summarize(latencies, failed))
      })
    }
    for (let i = 0; i < instances; i++) setTimeout(start, (i * 1000) / instances)
  })

/** The staggered shape, for direct SQL: consumer i sends its share of each second at i * 10 ms, one after another. */
const directPhase = async (rate: number, poll: (consumer: number) => Promise<void>) => {
  const latencies: Array<number> = []
  let failed = 0
  const perConsumer = rate / channels
  const began = performance.now()
  await Promise.all(Array.from({ length: channels }, async (_, consumer) => {
    for (let second = 0; second < phaseSeconds; second++) {
      const due = began + second * 1000 + (consumer * 1000) / channels
      await sleep(Math.max(0, due - performance.now()))
      for (let i = 0; i < perConsumer; i++) {
        const t = performance.now()
        await poll(consumer).then(() => void latencies.push(performance.now() - t), () => void failed++)
      }
    }
  }))
  return summarize(latencies, failed)
}

/**
 * The other key's client, in a worker thread of its own: `loops` loops,
 * each sending its next request when the previous one is answered (429s and
 * 503s included, as a hostile client would) to a path drawn from `paths`,
 * until told to stop; then it posts its answers by status. A thread of its
 * own, as another client's would be its own process: on this thread,
 * opening 500 connections held it for 114 ms in one run, and every answer
 * the other key reads would take turns with autocannon's timing of the
 * measured key.
 */
const otherKeyClient = `
const { parentPort, workerData } = require("node:worker_threads")
const { port, key, loops, paths } = workerData
let running = true
const statuses = {}
const loop = async () => {
  while (running) {
    const path = paths[Math.floor(Math.random() * paths.length)]
    const status = await fetch("http://127.0.0.1:" + port + path, { headers: { "x-api-key": key } })
      .then(async (response) => { await response.arrayBuffer(); return String(response.status) }, () => "error")
    statuses[status] = (statuses[status] ?? 0) + 1
  }
}
const clients = Array.from({ length: loops }, loop)
parentPort.once("message", async () => {
  running = false
  await Promise.all(clients)
  parentPort.postMessage(statuses)
})
`

/** Runs `phase` while the other key's client (`otherKeyClient`) keeps `loops` requests to `paths` in flight; returns the phase's summary. */
const whileOtherKey = async (loops: number, paths: ReadonlyArray<string>, phase: () => Promise<Summary>) => {
  const client = new Worker(otherKeyClient, { eval: true, workerData: { port, key: otherKey, loops, paths } })
  await sleep(500)
  const summary = await phase()
  const statuses = await new Promise((resolve) => {
    client.once("message", resolve)
    client.postMessage("stop")
  })
  await client.terminate()
  console.error(`  other key's answers: ${JSON.stringify(statuses)}`)
  return summary
}

let serverPid: number | undefined

/** The compiled server beside this file when the bench runs compiled (dist-bench/bench/api.js), else the source through tsx. */
const compiledServer = new URL("../src/bin/telegram-gateway-api.js", import.meta.url)
const serverCommand = import.meta.url.endsWith(".js") && process.env.BENCH_SERVER !== "tsx"
  ? [fileURLToPath(compiledServer)]
  : ["--import", "tsx", "src/bin/telegram-gateway-api.ts"]

/** The API unit's NODE_OPTIONS (its heap cap), as the server runs deployed (bench/pipeline/Deployed.ts). */
const serverEnvironment = deployedEnvironment(
  fileURLToPath(new URL(`${import.meta.url.endsWith(".js") ? "../../" : "../"}deploy/systemd/telegram-gateway-api.service`, import.meta.url)),
  { heapCap: true }
)

/** Starts the API program in its own process and waits until it answers. */
const startServer = (env: Record<string, string>) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const profile = cpuProfileDir === undefined ? [] : ["--cpu-prof", `--cpu-prof-dir=${cpuProfileDir}`]
      const child = spawn(process.execPath, [...profile, ...serverCommand], {
        env: { ...process.env, ...serverEnvironment, ...env },
        stdio: ["ignore", "ignore", "inherit"]
      })
      for (let attempt = 0; attempt < 300; attempt++) {
        if (child.exitCode !== null) throw new Error(`telegram-gateway-api exited with ${child.exitCode}`)
        const live = await fetch(`http://127.0.0.1:${port}/health/live`).then((r) => r.ok, () => false)
        if (live) {
          serverPid = child.pid
          return child
        }
        await sleep(100)
      }
      throw new Error("telegram-gateway-api did not answer /health/live within 30 s")
    }),
    (child: ChildProcess) =>
      Effect.promise(() =>
        new Promise<void>((resolve) => {
          child.once("exit", () => resolve())
          child.kill("SIGTERM")
        })
      )
  )

const program = Effect.gen(function*() {
  const database = yield* makeTestDatabase("bench_api", timescale ? { cluster: timescaleCluster } : {})
  const started = performance.now()
  yield* loadApiDataset(database, { messages, channels, days: historyDays, timescale })
  const loadSeconds = (performance.now() - started) / 1000

  const exchange = `bench_api_${port}`
  // RabbitEventBus declares the exchange it is pinged through; it is this run's alone.
  yield* Effect.addFinalizer(() =>
    Effect.promise(async () => {
      const connection = await Amqp.connect("amqp://guest:guest@127.0.0.1:5672")
      await (await connection.createChannel()).deleteExchange(exchange)
      await connection.close()
    }).pipe(Effect.ignore)
  )
  yield* startServer({
    DATABASE_URL: applicationUrl(Redacted.value(database.url)),
    REDIS_KEY_PREFIX: `${exchange}:`,
    RABBITMQ_EXCHANGE: exchange,
    API_PORT: String(port),
    API_KEYS: `bench:${createHash("sha256").update(key).digest("hex")}:read+ack:` +
      Array.from({ length: channels }, (_, consumer) => `bench-${consumer}`).join("+") +
      `,other:${createHash("sha256").update(otherKey).digest("hex")}:read`,
    API_RATE_LIMIT_PER_SECOND: "100000",
    API_RATE_LIMIT_BURST: "100000",
    LOG_LEVEL: "Warn"
  })

  const config = ConfigProvider.layer(ConfigProvider.fromUnknown({ database: { url: applicationUrl(Redacted.value(database.url)) } }))
  const direct = yield* Layer.build(PgMessageQuery.layer.pipe(Layer.provide(PgClient.layer), Layer.provide(config)))
  const messageQuery = Context.get(direct, MessageQuery)
  const directPoll = (consumer: number) =>
    Effect.runPromise(
      messageQuery.events({ after: sqlCursors[consumer]!, channelId: ChannelId.make(firstChannelId + consumer), limit: pageSize })
    ).then((events) => {
      const last = events.at(-1)
      if (last !== undefined) sqlCursors[consumer] = last.seq
    })

  const phases: Record<(typeof phaseNames)[number], () => Promise<Summary>> = {
    "HTTP poll, staggered @200": () => httpPhase("staggered", 200, pollRequest),
    "direct SQL poll, staggered @200": () => directPhase(200, directPoll),
    "HTTP poll, staggered @1000": () => httpPhase("staggered", 1000, pollRequest),
    "direct SQL poll, staggered @1000": () => directPhase(1000, directPoll),
    "HTTP mark processed (10 keys), staggered @200": () => httpPhase("staggered", 200, markRequest),
    "HTTP poll, synchronised @200": () => httpPhase("synchronised", 200, pollRequest),
    "HTTP poll, synchronised @1000": () => httpPhase("synchronised", 1000, pollRequest),
    "HTTP poll, staggered @200, other key floods /search (8 loops)": () =>
      whileOtherKey(8, ["/api/v1/search?q=btcusdt&limit=100"], () => httpPhase("staggered", 200, pollRequest)),
    "HTTP poll, staggered @200, other key holds 500 long polls": () =>
      whileOtherKey(
        500,
        // At the head (the last event loaded): a cursor past it is refused at once (400).
        Array.from(
          { length: channels },
          (_, consumer) => `/api/v1/messages?channelId=${firstChannelId + consumer}&after=${encodeCursor(BigInt(messages))}&wait=5`
        ),
        () => httpPhase("staggered", 200, pollRequest)
      )
  } as const
  type Phase = keyof typeof phases

  const { cpuPerRound, perRound, loads } = yield* Effect.promise(async () => {
    await httpPhase("staggered", 200, pollRequest) // warm-up: connections, plans, JIT
    const perRound: Record<string, Array<Summary>> = {}
    const cpuPerRound: Record<string, Array<ReturnType<typeof cpuCost>>> = {}
    const loads: Array<string> = []
    for (let round = 0; round < rounds; round++) {
      loads.push(loadAverage())
      for (const [name, run] of Object.entries(phases)) {
        if (!selected(name)) continue
        const before = cpuNow(serverPid)
        const summary = await run()
        const cpu = cpuCost(before, cpuNow(serverPid), summary.n)
        ;(perRound[name] ??= []).push(summary)
        ;(cpuPerRound[name] ??= []).push(cpu)
        console.error(`round ${round + 1} (load ${loads[round]}): ${name}: ${JSON.stringify(summary)} cpu ${JSON.stringify(cpu)}`)
      }
    }
    return { perRound, cpuPerRound, loads }
  })

  const results = Object.fromEntries(
    Object.keys(phases).filter(selected).map((name) => [name, medianSummary(perRound[name as Phase] ?? [])])
  ) as Record<Phase, Summary>
  console.log(
    `\n${messages.toLocaleString("en")} messages over ${channels} channels, loaded in ${loadSeconds.toFixed(1)} s; ` +
      `${rounds} rounds of ${phaseSeconds} s per phase, ${pageSize} events per poll; medians of the rounds; latencies in ms`
  )
  console.log(`load average (1/5/15 min) at the start of each round: ${loads.join(" | ")}; ${Os.cpus().length} CPUs`)
  console.log(`server: node ${serverCommand.join(" ")}, with ${JSON.stringify(serverEnvironment)}`)
  console.log(
    timescale
      ? "TimescaleDB side cluster 127.0.0.1:5439 directly (no PgBouncer), chunks older than a day compressed"
      : `PgBouncer reached through ${pgbouncerSocket === undefined ? "TCP 127.0.0.1:6434" : `its Unix socket in ${pgbouncerSocket}`}`
  )
  console.log("| what | n | failed | p50 | p95 | p99 |\n| --- | --- | --- | --- | --- | --- |")
  for (const [name, s] of Object.entries(results)) console.log(`| ${name} | ${s.n} | ${s.failed} | ${s.p50} | ${s.p95} | ${s.p99} |`)
  const cpu = Object.fromEntries(Object.entries(cpuPerRound).map(([name, runs]) => [name, {
    serverUsPerRequest: median(runs.map((run) => run.serverUsPerRequest)),
    benchUsPerRequest: median(runs.map((run) => run.benchUsPerRequest)),
    machineBusyCores: median(runs.map((run) => run.machineBusyCores))
  }]))
  console.log("CPU per answered request in µs (medians of the rounds): the server, this process (the client), and the machine's busy cores")
  console.log("| what | server µs | client µs | machine busy cores |\n| --- | --- | --- | --- |")
  for (const [name, c] of Object.entries(cpu)) console.log(`| ${name} | ${c.serverUsPerRequest} | ${c.benchUsPerRequest} | ${c.machineBusyCores} |`)
  // Evidence that the consumers followed their cursors rather than re-reading one page.
  const advanced = httpCursors.filter((cursor, consumer) => cursor !== encodeCursor(startSeq(consumer))).length
  console.log(JSON.stringify({
    bench: "api",
    messages,
    channels,
    consumers: channels,
    rounds,
    phaseSeconds,
    pageSize,
    loadTool: "autocannon 9, server in its own process",
    server: serverCommand.join(" "),
    serverEnvironment,
    database: timescale ? "timescaledb 5439, compressed chunks" : "postgresql via pgbouncer",
    pgbouncer: pgbouncerSocket === undefined ? "tcp 127.0.0.1:6434" : `unix ${pgbouncerSocket}`,
    loadAverages: loads,
    consumersAdvanced: advanced,
    cpu,
    ...results
  }))
})

Effect.runPromise(Effect.scoped(program)).then(() => process.exit(0), (error) => {
  console.error(error)
  process.exit(1)
})
