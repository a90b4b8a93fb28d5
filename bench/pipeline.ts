/**
 * `npm run bench`: the gateway as users feel it, beside the raw stack in the
 * same run.
 *
 * Processes, all on this machine and all stamping with one clock
 * (CLOCK_MONOTONIC, bench/pipeline/Protocol.ts):
 * - the gateway (bench/pipeline/GatewayProcess.ts): the daemon's layers
 *   (`Gateway.daemon`, configured from the environment as `telegram-gateway
 *   run` is) fed through the `TelegramSource` interface by a feeder that
 *   stamps each event at receipt and again at its batch's `onCommitted`;
 *   started with the systemd unit's NODE_OPTIONS, MALLOC_ARENA_MAX and node
 *   flags, as deployed, but never its heap cap (bench/pipeline/Deployed.ts),
 *   and bundled with Effect as `npm run build` bundles the daemon
 *   (`npm run bench:build`, deploy/scripts/bundle.mjs);
 * - the raw harness (bench/pipeline/RawHarness.ts): the same three writes
 *   with the same batching in plain Node (ioredis, amqplib with `noDelay`, a
 *   bare PostgreSQL socket through PgBouncer), no Effect: the ceiling. It
 *   writes to a database and an exchange of its own: on the gateway's, the
 *   gateway's bus relay would read its events back and publish them again,
 *   work that is not the gateway's own; the gateway's relay and publish
 *   counters, read from its /metrics around each phase, show it does not;
 * - observers (bench/pipeline/Observer.ts), one process each: Redis
 *   (broadcast key tracking: the moment the message's key is written), a
 *   consumer of a durable classic queue and one of a quorum queue, both
 *   bound to both exchanges, and a long-poller of the real API processes
 *   (`telegram-gateway-api`, one per target's database, started here on
 *   `BENCH_PORT` and `BENCH_PORT` + 2, the gateway's health endpoint on
 *   `BENCH_PORT` + 1; without `BENCH_PORT`, an even port of 21000-21799);
 *   each reports its own event-loop delay p99, the floor under its stamps;
 * - this process, which commands the phases and reads the targets' RSS and
 *   CPU time from /proc/<pid>: the gateway's figures are its process alone.
 *
 * Per rate (`--rates`, then full speed with `--messages` events), the gateway
 * and then the raw harness each run a phase on fresh channels; per phase:
 * receipt to readable in Redis, to delivered on each queue, to committed, to
 * visible through the API (p50/p95/p99 in ms), throughput, CPU per event
 * and peak RSS, and each gateway figure's ratio to the raw harness's. Then
 * the naive baseline (one awaited INSERT per message, from this process).
 * `--cost` instead measures the gateway's CPU per event and RSS at 100,
 * 1,000 and 5,000 msg/s over 1, 100 and 1,000 channels; `--soak SECONDS`
 * runs 1,000 msg/s that long in 10 s phases and reports the RSS slope;
 * `--idle SECONDS` measures each target's CPU with nothing to do, for that
 * long after the warm-up (as a share of one core). The
 * recovery phase (bench/Recovery.ts: PostgreSQL, then RabbitMQ, unreachable
 * for `--outage` seconds under `--recovery-rate` msg/s, in this process) runs
 * when `--outage` is above 0; `--rss-outage SECONDS` alone runs only the
 * memory check through a long PostgreSQL outage. Ends with one JSON line of
 * every figure. `--cpu-prof DIR` profiles the gateway process;
 * `--gateway-node-flags='--trace-gc ...'` starts it with more Node/V8 flags.
 *
 *   npm run bench -- --rates 1000,5000 --seconds 10 --messages 50000
 *   npm run bench -- --cost
 *   npm run bench -- --idle 30 --rates '' --messages 0 --baseline 0
 *   npm run bench -- --soak 300 --rates '' --messages 0
 *   npm run bench -- --outage 30 --recovery-rate 1000 --rates '' --messages 0
 *   npm run bench -- --rss-outage 600 --recovery-rate 1000
 */
import { PgClient } from "@effect/sql-pg"
import * as Amqp from "amqplib"
import { Duration, Effect, Redacted } from "effect"
import { Reactivity } from "effect/reactivity"
import { type ChildProcess, fork, spawn } from "node:child_process"
import { createHash } from "node:crypto"
import * as Os from "node:os"
import { fileURLToPath } from "node:url"
import { parseArgs } from "node:util"
import type { MessageEvent } from "../src/domain/Message.ts"
import { makeTestDatabase } from "../test/support/Database.ts"
import { created, freshChannelId, makeMessage } from "../test/support/TestEvents.ts"
import { uniqueName } from "../test/support/TestGateway.ts"
import { deployedEnvironment, deployedNodeFlags } from "./pipeline/Deployed.ts"
import { cpuMicros, watchRss } from "./pipeline/Proc.ts"
import {
  type Collected,
  type FromObserver,
  type FromTarget,
  indexOf,
  type PhaseDone,
  type ToObserver,
  type ToTarget
} from "./pipeline/Protocol.ts"
import { recoveryPhase, rssThroughOutage } from "./Recovery.ts"
import { removeRunKeys } from "./RunKeys.ts"
import { percentile, table } from "./Stats.ts"

const { values: args } = parseArgs({
  options: {
    messages: { type: "string", default: "50000" },
    rates: { type: "string", default: "1000,5000" },
    seconds: { type: "string", default: "10" },
    baseline: { type: "string", default: "3000" },
    outage: { type: "string", default: "0" },
    "recovery-rate": { type: "string", default: "1000" },
    "rss-outage": { type: "string", default: "0" },
    cost: { type: "boolean", default: false },
    "cost-seconds": { type: "string", default: "8" },
    soak: { type: "string", default: "0" },
    idle: { type: "string", default: "0" },
    raw: { type: "boolean", default: true },
    "cpu-prof": { type: "string" },
    "gateway-node-flags": { type: "string", default: "" }
  },
  allowNegative: true
})
const rssOutageSeconds = Number(args["rss-outage"])
const outageSeconds = Number(args.outage)
const recoveryRate = Number(args["recovery-rate"])
const fullSpeedMessages = Number(args.messages)
const rates = args.rates === "" ? [] : args.rates.split(",").map(Number)
const secondsPerRate = Number(args.seconds)
const baselineMessages = Number(args.baseline)
const costSeconds = Number(args["cost-seconds"])
const soakSeconds = Number(args.soak)
const idleSeconds = Number(args.idle)
/** Extra Node/V8 flags for the gateway's process alone (`--trace-gc`, a heap setting to compare), reported with the results. */
const gatewayNodeFlags = args["gateway-node-flags"].split(/\s+/).filter((flag) => flag !== "")
for (
  const [name, value] of Object.entries({
    messages: fullSpeedMessages,
    seconds: secondsPerRate,
    soak: soakSeconds,
    idle: idleSeconds
  })
) {
  if (!Number.isFinite(value) || value < 0) throw new Error(`--${name} must be a number of at least 0, got ${value}`)
}
if (rates.some((rate) => !(rate > 0))) throw new Error(`--rates must be positive numbers, got ${args.rates}`)

/**
 * The gateway's API on `port`, the gateway's health endpoint on `port + 1`,
 * the raw harness's API on `port + 2`: `BENCH_PORT`, so runs can sit beside
 * other work, or else an even port of 21000-21799.
 */
const port = process.env.BENCH_PORT === undefined ? 21000 + 2 * Math.floor(Math.random() * 400) : Number(process.env.BENCH_PORT)
if (!Number.isInteger(port) || port < 1024 || port > 65533) throw new Error(`BENCH_PORT must be a port of 1024-65533, got ${process.env.BENCH_PORT}`)
const rawApiPort = port + 2
const apiKey = `bench-${uniqueName("key")}`
const here = (file: string) => fileURLToPath(new URL(file, import.meta.url))
/** The gateway process starts with the systemd unit's memory settings (bench/pipeline/Deployed.ts). */
const gatewayEnvironment = deployedEnvironment(here("../../deploy/systemd/telegram-gateway.service"))
/** And with the flags its unit gives node, then any of `--gateway-node-flags`. */
const gatewayExecArgv = [...deployedNodeFlags(here("../../deploy/systemd/telegram-gateway.service")), ...gatewayNodeFlags]
/** The API processes the poller reads start with their unit's NODE_OPTIONS, heap cap included, as deployed. */
const apiEnvironment = deployedEnvironment(here("../../deploy/systemd/telegram-gateway-api.service"), { heapCap: true })
const loadAverage = () => Os.loadavg().map((n) => n.toFixed(2)).join(" ")
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

interface Latency {
  readonly p50: number
  readonly p95: number
  readonly p99: number
  /** Events this observer never saw within the phase's wait. */
  readonly missing: number
}
const observerRoles = ["redis", "classic", "quorum", "api"] as const
type Observed = (typeof observerRoles)[number] | "committed"

interface PhaseResult {
  readonly target: "gateway" | "raw"
  readonly rate: number | null
  readonly channels: number
  readonly events: number
  readonly msgPerSec: number
  readonly cpuMicrosPerEvent: number
  readonly peakRssMb: number
  /** The target's own `process.memoryUsage()` at the end of the phase, MB. */
  readonly memoryMb: Record<string, number>
  readonly latencyMs: Partial<Record<Observed, Latency>>
  /** Each observer's own event-loop delay p99 over the phase, ms: a latency below it cannot be resolved. */
  readonly observerLoopDelayP99Ms: Partial<Record<(typeof observerRoles)[number], number>>
  /**
   * How the gateway's counters moved from the phase's start to the end of its
   * collection (every observer done): on a raw phase, events the gateway
   * handled that were not its own (none, since each target has its own
   * database and exchange).
   */
  readonly gatewayCounters: GatewayCounters
}

/** A forked child speaking Protocol.ts, with a way to wait for its next message of a type. */
const child = <In, Out extends { readonly type: string }>(process: ChildProcess, name: string) => {
  const inbox: Array<Out> = []
  const waiters: Array<() => void> = []
  process.on("message", (message: Out) => {
    inbox.push(message)
    for (const wake of waiters.splice(0)) wake()
  })
  let exited = false
  process.once("exit", (code) => {
    exited = true
    for (const wake of waiters.splice(0)) wake()
    if (code !== 0 && code !== null) console.error(`${name} exited with ${code}`)
  })
  const next = async <T extends Out["type"]>(type: T): Promise<Extract<Out, { type: T }>> => {
    while (true) {
      const index = inbox.findIndex((message) => message.type === type)
      if (index >= 0) return inbox.splice(index, 1)[0] as Extract<Out, { type: T }>
      if (exited) throw new Error(`${name} exited before sending ${type}`)
      await new Promise<void>((resolve) => waiters.push(resolve))
    }
  }
  return { process, pid: process.pid!, send: (message: In) => void process.send(message as object), next }
}

const forkChild = <In, Out extends { readonly type: string }>(
  file: string,
  name: string,
  argv: Array<string>,
  env: Record<string, string>,
  execArgv: Array<string> = []
) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const handle = child<In, Out>(
        fork(here(file), argv, { env: { ...process.env, ...env }, execArgv, stdio: ["ignore", "inherit", "inherit", "ipc"] }),
        name
      )
      await handle.next("ready")
      return handle
    }),
    (handle) =>
      Effect.promise(() =>
        new Promise<void>((resolve) => {
          if (handle.process.exitCode !== null) return resolve()
          const timer = setTimeout(() => handle.process.kill("SIGKILL"), 15_000)
          handle.process.once("exit", () => (clearTimeout(timer), resolve()))
          handle.process.send({ type: "stop" })
          handle.process.disconnect()
        })
      )
  )

/** Counters of the gateway's /metrics the bench follows: what it received, published and relayed. */
const gatewayCounterNames = {
  received: "events_received_total",
  committed: "events_committed_total",
  published: "events_published_total",
  relayPublished: "bus_relay_published_total",
  hotPathSkipped: "hot_path_skipped_total",
  hotPathPublishSkipped: "hot_path_publish_skipped_total"
} as const
type GatewayCounters = Record<keyof typeof gatewayCounterNames, number>

/** The gateway's counters now, each summed over its labels, from its Prometheus endpoint. */
const readGatewayCounters = async (): Promise<GatewayCounters> => {
  const text = await fetch(`http://127.0.0.1:${port + 1}/metrics`).then((response) => response.text())
  const sums = new Map<string, number>()
  for (const line of text.split("\n")) {
    if (line.startsWith("#")) continue
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line)
    if (match !== null) sums.set(match[1]!, (sums.get(match[1]!) ?? 0) + Number(match[3]))
  }
  return Object.fromEntries(
    Object.entries(gatewayCounterNames).map(([field, name]) => [field, sums.get(name) ?? 0])
  ) as GatewayCounters
}
const counterDelta = (after: GatewayCounters, before: GatewayCounters): GatewayCounters =>
  Object.fromEntries(
    Object.keys(gatewayCounterNames).map((field) => [field, after[field as keyof GatewayCounters] - before[field as keyof GatewayCounters]])
  ) as GatewayCounters

/** The real API process, bundled as deployed (`npm run bench:build`), on `apiPort`, until it answers /health/live. */
const startApi = (apiPort: number, env: Record<string, string>) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const api = spawn(process.execPath, [here("../src/bin/telegram-gateway-api.js")], {
        env: { ...process.env, ...apiEnvironment, ...env },
        stdio: ["ignore", "ignore", "inherit"]
      })
      for (let attempt = 0; attempt < 300; attempt++) {
        if (api.exitCode !== null) throw new Error(`telegram-gateway-api exited with ${api.exitCode}`)
        if (await fetch(`http://127.0.0.1:${apiPort}/health/live`).then((r) => r.ok, () => false)) return api
        await sleep(100)
      }
      throw new Error("telegram-gateway-api did not answer /health/live within 30 s")
    }),
    (api) => Effect.promise(() => new Promise<void>((resolve) => (api.once("exit", () => resolve()), api.kill("SIGTERM"))))
  )

const summarize = (samples: ReadonlyArray<number>, missing: number): Latency => ({
  p50: percentile(samples, 50),
  p95: percentile(samples, 95),
  p99: percentile(samples, 99),
  missing
})

let nextPhase = 0
/** Events fed to the gateway so far (warm-up included), to hold its counters to. */
let fedToGateway = 0
let nextChannel = 1_000_000_000 + Math.floor(Math.random() * 1_000_000_000)

type Target = ReturnType<typeof child<ToTarget, FromTarget>>
type Observer = ReturnType<typeof child<ToObserver, FromObserver>>

/** One phase on `target`: its events on fresh channels, timed by every observer. */
const runPhase = async (
  name: "gateway" | "raw",
  target: Target,
  observers: ReadonlyArray<{ readonly role: (typeof observerRoles)[number]; readonly handle: Observer }>,
  options: { readonly rate: number | null; readonly count: number; readonly channels: number },
  rss: ReturnType<typeof watchRss>
): Promise<PhaseResult> => {
  const channels = Array.from({ length: options.channels }, () => nextChannel++)
  for (const { handle } of observers) handle.send({ type: "watch", channels })
  await sleep(200) // the API observer's first long polls are open
  const id = nextPhase++
  const countersBefore = await readGatewayCounters()
  rss.startPhase()
  const cpuBefore = cpuMicros(target.pid)
  target.send({ type: "phase", id, channels, rate: options.rate, count: options.count })
  const done: PhaseDone = await target.next("phaseDone")
  if (name === "gateway") fedToGateway += options.count
  const cpu = cpuMicros(target.pid) - cpuBefore
  const peakRssMb = rss.phasePeakMb()
  const collected = await Promise.all(observers.map(async ({ handle, role }) => {
    handle.send({ type: "collect", id, expected: options.count, timeoutMs: 5_000 })
    const answer: Collected = await handle.next("collected")
    return [role, answer.seen, answer.loopDelayP99Ms] as const
  }))
  const gatewayCounters = counterDelta(await readGatewayCounters(), countersBefore)
  const observerLoopDelayP99Ms = Object.fromEntries(collected.map(([role, , delay]) => [role, round(delay)]))
  const latencyMs: Partial<Record<Observed, Latency>> = {}
  const committed = done.commits.map((at, index) => at - done.receipts[index]!)
  latencyMs.committed = summarize(committed, done.commits.filter((at) => at === 0).length)
  for (const [role, seen] of collected) {
    const samples: Array<number> = []
    for (const [key, at] of Object.entries(seen)) {
      const index = indexOf(channels, key)
      if (index >= 0 && index < options.count) samples.push(at - done.receipts[index]!)
    }
    latencyMs[role] = summarize(samples, options.count - samples.length)
  }
  const first = done.receipts[0]!
  const last = options.rate === null ? Math.max(...done.commits) : done.receipts[options.count - 1]!
  const result: PhaseResult = {
    target: name,
    rate: options.rate,
    channels: options.channels,
    events: options.count,
    msgPerSec: options.count / ((last - first) / 1000),
    cpuMicrosPerEvent: cpu / options.count,
    peakRssMb,
    memoryMb: done.memoryMb,
    latencyMs,
    observerLoopDelayP99Ms,
    gatewayCounters
  }
  console.error(`${name} ${options.rate ?? "full speed"} x${options.channels}: ${JSON.stringify(result)} (load ${loadAverage()})`)
  return result
}

const messagesFor = (count: number) => {
  const channelId = freshChannelId()
  return Array.from({ length: count }, (_, index) => created(makeMessage(channelId, index + 1)))
}

/** One INSERT per message, each awaited: what a gateway without batching does. */
const baseline = (url: Redacted.Redacted<string>, events: ReadonlyArray<MessageEvent>) =>
  Effect.gen(function*() {
    const sql = yield* PgClient.makeClient({ url, prepare: false })
    const latencies: Array<number> = []
    const started = performance.now()
    for (const event of events) {
      if (event._tag !== "MessageCreated") continue
      const message = event.message
      const begin = performance.now()
      yield* sql`INSERT INTO messages (channel_id, message_id, version, date, text, raw, received_at)
        VALUES (${message.channelId}, ${message.messageId}, 0, to_timestamp(${message.date}), ${message.text},
          ${JSON.stringify(message.raw)}::jsonb, now())
        ON CONFLICT DO NOTHING`
      latencies.push(performance.now() - begin)
    }
    return { throughput: events.length / ((performance.now() - started) / 1000), latency: summarize(latencies, 0) }
  }).pipe(Effect.scoped, Effect.provide(Reactivity.layer))


/** Deletes this run's Redis keys and its exchanges; the observers delete their queues. */
const cleanUp = (keyPrefix: string, exchanges: ReadonlyArray<string>) =>
  removeRunKeys(keyPrefix).pipe(
    Effect.andThen(Effect.tryPromise(async () => {
      const connection = await Amqp.connect("amqp://guest:guest@127.0.0.1:5672")
      const channel = await connection.createChannel()
      for (const exchange of exchanges) await channel.deleteExchange(exchange)
      await connection.close()
    })),
    Effect.ignore
  )

const round = (value: number, digits = 2) => Number(value.toFixed(digits))
const ratio = (gateway: number, raw: number) => (raw > 0 ? round(gateway / raw) : Number.NaN)

const main = Effect.gen(function*() {
  const loadAtStart = loadAverage()
  const database = yield* makeTestDatabase("bench_pipeline")
  const exchange = uniqueName("bench.messages")
  // The raw harness's own database and exchange (dropped and deleted at the end, as the gateway's):
  // sharing the gateway's, its events were read back and published again by the gateway's bus relay.
  const rawDatabase = args.raw ? yield* makeTestDatabase("bench_raw") : undefined
  const rawExchange = uniqueName("bench.raw")
  const keyPrefix = `${uniqueName("tgbench")}:`
  const databaseUrl = Redacted.value(database.url)
  // Runs last: the shared Redis and RabbitMQ keep nothing of this run (the databases are dropped with their scopes).
  yield* Effect.addFinalizer(() => cleanUp(keyPrefix, [exchange, rawExchange]))

  const api = (apiPort: number, url: string, apiExchange: string) =>
    startApi(apiPort, {
      DATABASE_URL: url,
      REDIS_KEY_PREFIX: keyPrefix,
      RABBITMQ_EXCHANGE: apiExchange,
      API_PORT: String(apiPort),
      API_KEYS: `bench:${createHash("sha256").update(apiKey).digest("hex")}:read`,
      API_RATE_LIMIT_PER_SECOND: "100000",
      API_RATE_LIMIT_BURST: "100000",
      LOG_LEVEL: "Warn"
    })
  yield* api(port, databaseUrl, exchange)
  if (rawDatabase !== undefined) yield* api(rawApiPort, Redacted.value(rawDatabase.url), rawExchange)
  const observers = yield* Effect.forEach(observerRoles, (role) =>
    forkChild<ToObserver, FromObserver>("./pipeline/Observer.js", `observer ${role}`, [role], {
      BENCH_KEY_PREFIX: keyPrefix,
      BENCH_EXCHANGES: rawDatabase === undefined ? exchange : `${exchange},${rawExchange}`,
      BENCH_QUEUE: uniqueName(`bench_${role}`),
      BENCH_API_URLS: [port, ...(rawDatabase === undefined ? [] : [rawApiPort])]
        .map((apiPort) => `http://127.0.0.1:${apiPort}`)
        .join(","),
      BENCH_API_KEY: apiKey
    }).pipe(Effect.map((handle) => ({ role, handle }))))
  const gateway = yield* forkChild<ToTarget, FromTarget>("./pipeline/GatewayProcess.js", "gateway", [], {
    ...gatewayEnvironment,
    DATABASE_URL: databaseUrl,
    REDIS_KEY_PREFIX: keyPrefix,
    RABBITMQ_EXCHANGE: exchange,
    HTTP_PORT: String(port + 1),
    LOG_LEVEL: "Warn"
  }, [...gatewayExecArgv, ...(args["cpu-prof"] === undefined ? [] : ["--cpu-prof", `--cpu-prof-dir=${args["cpu-prof"]}`])])
  const raw = rawDatabase !== undefined
    ? yield* forkChild<ToTarget, FromTarget>("./pipeline/RawHarness.js", "raw harness", [], {
      BENCH_KEY_PREFIX: keyPrefix,
      BENCH_EXCHANGE: rawExchange,
      BENCH_DATABASE_URL: Redacted.value(rawDatabase.url)
    })
    : undefined
  const countersAtStart = yield* Effect.promise(readGatewayCounters)
  const gatewayRss = watchRss(gateway.pid)
  const rawRss = raw === undefined ? undefined : watchRss(raw.pid)
  yield* Effect.addFinalizer(() => Effect.sync(() => (gatewayRss.stop(), rawRss?.stop())))

  const { phases, cost, soak, idle } = yield* Effect.promise(async () => {
    type Which = readonly ["gateway" | "raw", Target, ReturnType<typeof watchRss>]
    const targets: ReadonlyArray<Which> = [
      ["gateway", gateway, gatewayRss],
      ...(raw === undefined ? [] : [["raw", raw, rawRss!] as const])
    ]
    const phase = (
      which: Which,
      options: { readonly rate: number | null; readonly count: number; readonly channels: number },
      observing: ReadonlyArray<{ readonly role: (typeof observerRoles)[number]; readonly handle: Observer }> = observers
    ) => runPhase(which[0], which[1], observing, options, which[2])
    for (const which of targets) await phase(which, { rate: null, count: 2_000, channels: 1 }) // warm-up: connections, JIT
    // CPU with nothing to do: what the process's timers and loops cost at rest, per target.
    const idle = idleSeconds > 0
      ? await (async () => {
        const before = targets.map(([, target]) => cpuMicros(target.pid))
        await sleep(idleSeconds * 1000)
        return targets.map(([name, target], index) => ({
          target: name,
          seconds: idleSeconds,
          percentOfCore: round((cpuMicros(target.pid) - before[index]!) / (idleSeconds * 1e4), 2)
        }))
      })()
      : []
    const phases: Array<PhaseResult> = []
    for (const rate of [...rates, ...(fullSpeedMessages > 0 ? [null] : [])]) {
      for (const which of targets) {
        phases.push(
          await phase(which, { rate, count: rate === null ? fullSpeedMessages : rate * secondsPerRate, channels: 1 })
        )
      }
    }
    const cost: Array<PhaseResult> = []
    if (args.cost) {
      const withoutApi = observers.filter((observer) => observer.role !== "api")
      for (const channels of [1, 100, 1000]) {
        for (const rate of [100, 1000, 5000]) {
          cost.push(await phase(targets[0]!, { rate, count: rate * costSeconds, channels }, withoutApi))
        }
      }
    }
    let soak: { seconds: number; rssStartMb: number; rssEndMb: number; slopeMbPerMinute: number } | undefined
    if (soakSeconds > 0) {
      // In 10 s phases, so the feeder's per-phase arrays are freed as it goes; the slope is
      // fitted to the RSS sampled after each phase, the first (warm-up) left out.
      const points: Array<{ at: number; mb: number }> = []
      const began = performance.now()
      while (performance.now() - began < soakSeconds * 1000) {
        await phase(targets[0]!, { rate: 1000, count: 10_000, channels: 1 }, [])
        points.push({ at: (performance.now() - began) / 60_000, mb: gatewayRss.phasePeakMb() })
      }
      const fit = points.slice(1)
      const meanX = fit.reduce((sum, p) => sum + p.at, 0) / fit.length
      const meanY = fit.reduce((sum, p) => sum + p.mb, 0) / fit.length
      const slope = fit.reduce((sum, p) => sum + (p.at - meanX) * (p.mb - meanY), 0) /
        fit.reduce((sum, p) => sum + (p.at - meanX) ** 2, 0)
      soak = {
        seconds: soakSeconds,
        rssStartMb: round(fit[0]?.mb ?? Number.NaN, 1),
        rssEndMb: round(fit.at(-1)?.mb ?? Number.NaN, 1),
        slopeMbPerMinute: round(slope, 3)
      }
      console.error(`soak: ${JSON.stringify({ ...soak, points })}`)
    }
    return { phases, cost, soak, idle }
  })
  // The whole run's counters, after the relay's grace (3 publish timeouts and 1 s, src/programs/Ingestion.ts)
  // has passed for the last events: everything the gateway received, published and relayed, against what it was fed.
  yield* Effect.sleep(Duration.seconds(5))
  const gatewayRun = {
    fed: fedToGateway,
    ...counterDelta(yield* Effect.promise(readGatewayCounters), countersAtStart)
  }

  // On the raw harness's database when there is one: the gateway's bus relay would read these rows too.
  const naive = baselineMessages > 0
    ? yield* baseline(rawDatabase?.url ?? database.url, messagesFor(baselineMessages))
    : undefined
  const recovery = outageSeconds > 0 ? yield* recoveryPhase({ rate: recoveryRate, outageSeconds }) : []
  const loadAtEnd = loadAverage()

  const rateName = (rate: number | null) => (rate === null ? "full speed" : `${rate}/s`)
  const figures = ["redis", "classic", "quorum", "committed", "api"] as const
  const rawOf = (result: PhaseResult) => phases.find((p) => p.target === "raw" && p.rate === result.rate)
  console.log(`\nPipeline: receipt to each place a consumer looks, gateway process beside the raw harness; load ${loadAtStart} at the start, ${loadAtEnd} at the end (${Os.cpus().length} CPUs); gateway started with ${JSON.stringify(gatewayEnvironment)}${gatewayExecArgv.length > 0 ? ` and ${gatewayExecArgv.join(" ")}` : ""}`)
  console.log(table(
    ["run", "target", "msg/s", ...figures.flatMap((f) => [`${f} p50`, `${f} p99`]), "CPU µs/ev", "peak RSS MB"],
    phases.map((result) => [
      rateName(result.rate),
      result.target,
      result.msgPerSec,
      ...figures.flatMap((f) => [result.latencyMs[f]?.p50 ?? "-", result.latencyMs[f]?.p99 ?? "-"]),
      result.cpuMicrosPerEvent,
      result.peakRssMb
    ])
  ))
  const ratios = phases.filter((result) => result.target === "gateway" && rawOf(result) !== undefined).map((result) => {
    const rawResult = rawOf(result)!
    return {
      rate: result.rate,
      msgPerSec: ratio(result.msgPerSec, rawResult.msgPerSec),
      cpuMicrosPerEvent: ratio(result.cpuMicrosPerEvent, rawResult.cpuMicrosPerEvent),
      peakRssMb: ratio(result.peakRssMb, rawResult.peakRssMb),
      p99: Object.fromEntries(figures.map((f) => [f, ratio(result.latencyMs[f]?.p99 ?? NaN, rawResult.latencyMs[f]?.p99 ?? NaN)]))
    }
  })
  if (ratios.length > 0) {
    console.log("\nGateway / raw harness (p99 latencies; 1.00 = the ceiling):")
    console.log(table(
      ["run", "msg/s", ...figures.map((f) => `${f} p99`), "CPU µs/ev", "peak RSS"],
      ratios.map((r) => [rateName(r.rate), r.msgPerSec, ...figures.map((f) => r.p99[f]!), r.cpuMicrosPerEvent, r.peakRssMb])
    ))
  }
  console.log(`\nThe gateway's counters over the run (fed ${gatewayRun.fed} events): ${JSON.stringify(gatewayRun)}`)
  console.log(
    `Observers' own event-loop delay p99, ms, per phase (the floor under their latencies): ${
      JSON.stringify(phases.map((result) => ({ run: rateName(result.rate), target: result.target, ...result.observerLoopDelayP99Ms })))
    }`
  )
  const missing = phases.filter((result) => Object.values(result.latencyMs).some((l) => l.missing > 0))
  for (const result of missing) {
    console.log(`${result.target} ${rateName(result.rate)}: not seen: ${JSON.stringify(Object.fromEntries(Object.entries(result.latencyMs).map(([k, l]) => [k, l.missing])))}`)
  }
  if (cost.length > 0) {
    console.log(`\nCost of the gateway process as work grows (${costSeconds} s per phase):`)
    console.log(table(
      ["channels", "msg/s", "CPU µs/ev", "CPU % of a core", "peak RSS MB", "redis p99", "classic p99", "committed p99"],
      cost.map((result) => [
        result.channels,
        result.rate,
        result.cpuMicrosPerEvent,
        (result.cpuMicrosPerEvent * (result.rate ?? 0)) / 10_000,
        result.peakRssMb,
        result.latencyMs.redis?.p99 ?? "-",
        result.latencyMs.classic?.p99 ?? "-",
        result.latencyMs.committed?.p99 ?? "-"
      ])
    ))
  }
  for (const run of idle) {
    console.log(`\nIdle for ${run.seconds} s after the warm-up: ${run.target} ${run.percentOfCore}% of one core`)
  }
  if (soak !== undefined) {
    console.log(`\nSoak at 1,000 msg/s for ${soak.seconds} s: gateway RSS ${soak.rssStartMb} -> ${soak.rssEndMb} MB, slope ${soak.slopeMbPerMinute} MB/min`)
  }
  if (naive !== undefined) {
    console.log(`\nnaive INSERT (one awaited INSERT per message, from this process): ${naive.throughput.toFixed(0)} msg/s, latency ms ${JSON.stringify(naive.latency)}`)
  }
  if (recovery.length > 0) {
    console.log(`\nRecovery: each tier unreachable for ${outageSeconds} s under ${recoveryRate} msg/s, then back (gateway in this process)`)
    console.log(table(
      ["tier", "backlog", "drain msg/s", "caught up after s"],
      recovery.map((run) => [run.tier, run.backlog, run.drainMsgPerSec, run.catchUpSeconds])
    ))
    console.log("postgres: caught up = ingest_oldest_uncommitted_seconds under 1 s; rabbitmq: bus relay published every committed event")
  }
  const compact = (result: PhaseResult) => ({
    ...result,
    msgPerSec: Math.round(result.msgPerSec),
    cpuMicrosPerEvent: round(result.cpuMicrosPerEvent, 1),
    peakRssMb: Math.round(result.peakRssMb)
  })
  console.log(JSON.stringify({
    bench: "pipeline",
    load: { start: loadAtStart, end: loadAtEnd },
    clock: "CLOCK_MONOTONIC (process.hrtime), shared by every process",
    gatewayEnvironment,
    gatewayExecArgv,
    ports: { api: port, health: port + 1, rawApi: rawDatabase === undefined ? undefined : rawApiPort },
    gatewayRun,
    phases: phases.map(compact),
    ratios,
    cost: cost.map(compact),
    soak,
    idle,
    baseline: naive === undefined ? undefined : { msgPerSec: Math.round(naive.throughput), latencyMs: naive.latency },
    recovery: recovery.map((run) => ({
      ...run,
      drainMsgPerSec: Math.round(run.drainMsgPerSec),
      catchUpSeconds: Number(run.catchUpSeconds.toFixed(2))
    }))
  }))
})

/** `--rss-outage`: only the long PostgreSQL outage, with the peak RSS. */
const rssOnly = Effect.gen(function*() {
  const run = yield* rssThroughOutage({ rate: recoveryRate, outageSeconds: rssOutageSeconds })
  console.log(`\nPostgreSQL unreachable for ${run.outageSeconds} s under ${run.rate} msg/s, default ingest bounds`)
  console.log(table(
    ["RSS before MB", "peak RSS outage MB", "backlog at heal", "peak RSS drain MB", "caught up after s"],
    [[run.rssBeforeMb, run.peakRssOutageMb, run.backlog, run.peakRssDrainMb, run.catchUpSeconds]]
  ))
  console.log(JSON.stringify({
    bench: "rss-outage",
    ...run,
    rssBeforeMb: Math.round(run.rssBeforeMb),
    peakRssOutageMb: Math.round(run.peakRssOutageMb),
    peakRssDrainMb: Math.round(run.peakRssDrainMb),
    catchUpSeconds: Number(run.catchUpSeconds.toFixed(2))
  }))
})

Effect.runPromise((rssOutageSeconds > 0 ? rssOnly : main).pipe(Effect.scoped)).then(
  () => process.exit(0),
  (error) => {
    console.error(error)
    process.exit(1)
  }
)
