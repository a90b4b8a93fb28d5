/**
 * Take-over time of a standby (not a test): `npm run bench:takeover`.
 *
 * Per round and per signal: the Telegram simulator in this process, a fresh
 * database, and two `telegram-gateway run` processes
 * (test/support/GatewayProcess.ts) on one account with the default lease
 * settings (ha.leaseTtl 10 s, ha.renewInterval 2 s, ha.pollInterval 1 s),
 * each with its own copy of the session file as on two hosts. Once one owns
 * the account and the other stands by, the owner gets SIGKILL, SIGSTOP or
 * SIGTERM; the time is from the signal until the standby's /health/ready
 * reports it the owner (it has then connected to Telegram and started its
 * source), polled every 50 ms. `BENCH_ROUNDS` rounds (default 3); prints a
 * table, then one JSON line.
 */
import { type Duration, Effect, Redacted, Schedule } from "effect"
import * as Fs from "node:fs/promises"
import * as Os from "node:os"
import * as Path from "node:path"
import { writeSession } from "../src/layers/SessionFile.ts"
import { TelegramSimulator } from "../src/simulator/index.ts"
import { makeTestDatabase } from "../test/support/Database.ts"
import { type GatewayProcess, startGatewayProcess } from "../test/support/GatewayProcess.ts"
import { uniqueName } from "../test/support/TestGateway.ts"

const rounds = Number(process.env.BENCH_ROUNDS ?? 3)
const signals = ["SIGKILL", "SIGSTOP", "SIGTERM"] as const

const roleOf = (gateway: GatewayProcess) =>
  gateway.get("/health/ready").pipe(Effect.map((response) => {
    try {
      return (JSON.parse(response?.body ?? "{}") as { accounts?: Array<{ role: string }> }).accounts?.[0]?.role
    } catch {
      return undefined
    }
  }))

const becomes = (gateway: GatewayProcess, role: string, every: Duration.Input) =>
  roleOf(gateway).pipe(Effect.repeat({ until: (found) => found === role, schedule: Schedule.spaced(every) }), Effect.timeout("120 seconds"))

const round = (signal: typeof signals[number]) =>
  Effect.scoped(Effect.gen(function*() {
    const sim = yield* TelegramSimulator.start({ log: () => {} })
    sim.world.addChannel({ username: "bench_takeover", title: "Take-over", kind: "channel" })
    const database = yield* makeTestDatabase("bench_takeover")
    const directory = yield* Effect.acquireRelease(
      Effect.promise(() => Fs.mkdtemp(Path.join(Os.tmpdir(), "tg-takeover-"))),
      (path) => Effect.promise(() => Fs.rm(path, { recursive: true, force: true }))
    )
    const env = (host: string) => ({
      DATABASE_URL: Redacted.value(database.url),
      DATABASE_MIGRATION_URL: Redacted.value(database.migrationUrl),
      REDIS_KEY_PREFIX: `${uniqueName("tgbench")}:`,
      RABBITMQ_EXCHANGE: uniqueName("bench.takeover"),
      TELEGRAM_API_ID: "1",
      TELEGRAM_API_HASH: "simulator",
      TELEGRAM_SESSION_FILE: Path.join(directory, host, "telegram.session"),
      TELEGRAM_CHANNELS: "@bench_takeover",
      TELEGRAM_DC_ID: String(sim.dcId),
      TELEGRAM_DC_ADDRESS: sim.host,
      TELEGRAM_DC_PORT: String(sim.port)
    })
    for (const host of ["a", "b"]) yield* writeSession(Path.join(directory, host, "telegram.session"), Redacted.make(sim.sessionString))
    const owner = yield* startGatewayProcess({ env: env("a") })
    yield* becomes(owner, "owner", "200 millis")
    const standby = yield* startGatewayProcess({ env: env("b") })
    yield* becomes(standby, "standby", "200 millis")
    // Let a few renewals pass, so the signal falls anywhere in the renewal cycle.
    yield* Effect.sleep(`${3000 + Math.floor(Math.random() * 2000)} millis`)
    const started = performance.now()
    owner.kill(signal)
    yield* becomes(standby, "owner", "50 millis")
    const ms = Math.round(performance.now() - started)
    if (signal === "SIGSTOP") owner.kill("SIGCONT")
    return ms
  }))

const median = (values: ReadonlyArray<number>) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!

const main = Effect.gen(function*() {
  const results: Record<string, Array<number>> = {}
  for (let i = 0; i < rounds; i++) {
    for (const signal of signals) {
      const ms = yield* round(signal)
      ;(results[signal] ??= []).push(ms)
      console.log(`round ${i + 1} ${signal}: ${ms} ms (load ${Os.loadavg()[0]!.toFixed(2)})`)
    }
  }
  console.log("\nsignal   | median ms | min ms | max ms | rounds")
  for (const signal of signals) {
    const values = results[signal]!
    console.log(`${signal.padEnd(8)} | ${String(median(values)).padStart(9)} | ${String(Math.min(...values)).padStart(6)} | ${String(Math.max(...values)).padStart(6)} | ${values.length}`)
  }
  console.log(JSON.stringify({ bench: "takeover", leaseTtlMs: 10_000, renewIntervalMs: 2_000, pollIntervalMs: 1_000, results }))
})

Effect.runPromise(main).then(() => process.exit(0), (error) => {
  console.error(error)
  process.exit(1)
})
