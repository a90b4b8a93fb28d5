/**
 * The alternative we measured and did not choose (docs/architecture.md, "High
 * availability"): Effect's own cluster module. `npx tsx bench/cluster-takeover.ts`.
 *
 * Two runner processes (this file with `runner <port> <url>`), each
 * `NodeClusterSocket.layer` with `SqlRunnerStorage` and `SqlMessageStorage`
 * on a direct PostgreSQL connection (advisory locks need a session) to a
 * fresh database, and one `Singleton` per account that prints a line when it
 * starts. `shardLockExpiration` 10 s and `shardLockRefreshInterval` 3 s (the
 * defaults, 35 s and 10 s, are too slow for a 15 s take-over),
 * `refreshAssignmentsInterval` 1 s, 30 shards. Once both runners are up
 * the runner that started the singleton gets SIGKILL, SIGSTOP
 * or SIGTERM (once one runner started it, and 10 s more); the time is from the signal until the other prints that it
 * started it. `BENCH_ROUNDS` rounds (default 3). Then five singletons on
 * three runners: where they end up, and how many moves it took.
 */
import { NodeClusterSocket, NodeRuntime } from "@effect/platform-node"
import { PgClient } from "@effect/sql-pg"
import { Effect, Layer, Option, Redacted } from "effect"
import { RunnerAddress, Singleton } from "effect/cluster"
import { type ChildProcess, spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { makeTestDatabase } from "../test/support/Database.ts"

const self = fileURLToPath(import.meta.url)

const runner = (port: number, url: string, accounts: number) => {
  const singleton = (name: string) =>
    Singleton.make(name, Effect.gen(function*() {
      console.log(JSON.stringify({ event: "started", name, at: Date.now() }))
      yield* Effect.never
    }).pipe(Effect.onInterrupt(() => Effect.sync(() => console.log(JSON.stringify({ event: "stopped", name, at: Date.now() }))))))
  const singletons = Layer.mergeAll(singleton("account-0"), ...Array.from({ length: accounts - 1 }, (_, i) => singleton(`account-${i + 1}`)))
  const sharding = NodeClusterSocket.layer({
    storage: "sql",
    shardingConfig: {
      runnerAddress: Option.some(RunnerAddress.make("127.0.0.1", port)),
      shardLockExpiration: "10 seconds",
      shardLockRefreshInterval: "3 seconds",
      refreshAssignmentsInterval: "1 second",
      shardsPerGroup: 30
    }
  })
  Layer.launch(singletons.pipe(Layer.provide(sharding), Layer.provide(PgClient.layer({ url: Redacted.make(url) })))).pipe(
    NodeRuntime.runMain
  )
}

interface Event {
  readonly event: "started" | "stopped"
  readonly name: string
  readonly at: number
  readonly runner: number
}

const startRunners = (ports: ReadonlyArray<number>, url: string, accounts: number, events: Array<Event>) =>
  Effect.acquireRelease(
    Effect.sync(() =>
      new Map(ports.map((port) => {
        const child = spawn(process.execPath, ["--import", "tsx", self, "runner", String(port), url, String(accounts)], {
          stdio: ["ignore", "pipe", "ignore"]
        })
        child.stdout!.on("data", (chunk: Buffer) => {
          for (const line of chunk.toString().split("\n")) {
            if (line.startsWith("{")) events.push({ ...(JSON.parse(line) as Omit<Event, "runner">), runner: port })
          }
        })
        return [port, child] as const
      }))
    ),
    (children) =>
      Effect.sync(() => {
        for (const child of children.values()) {
          child.kill("SIGCONT")
          child.kill("SIGKILL")
        }
      })
  )

const holderOf = (events: ReadonlyArray<Event>, name: string) => {
  const last = [...events].reverse().find((event) => event.name === name && event.event === "started")
  return last?.runner
}

const takeover = (signal: NodeJS.Signals, basePort: number) =>
  Effect.scoped(Effect.gen(function*() {
    const database = yield* makeTestDatabase("bench_cluster")
    const events: Array<Event> = []
    const children = yield* startRunners([basePort, basePort + 1], Redacted.value(database.migrationUrl), 1, events)
    // Until a runner started the singleton, then a few refreshes more.
    while (holderOf(events, "account-0") === undefined) yield* Effect.sleep("100 millis")
    yield* Effect.sleep("10 seconds")
    const holder = holderOf(events, "account-0")!
    const started = Date.now()
    ;(children.get(holder) as ChildProcess).kill(signal)
    while (!events.some((event) => event.event === "started" && event.at >= started && event.runner !== holder)) {
      yield* Effect.sleep("20 millis")
    }
    return events.find((event) => event.event === "started" && event.at >= started && event.runner !== holder)!.at - started
  }))

const spread = Effect.scoped(Effect.gen(function*() {
  const database = yield* makeTestDatabase("bench_cluster")
  const events: Array<Event> = []
  yield* startRunners([19021, 19022, 19023], Redacted.value(database.migrationUrl), 5, events)
  yield* Effect.sleep("30 seconds")
  const owners = Array.from({ length: 5 }, (_, i) => holderOf(events, `account-${i}`))
  const perRunner = [19021, 19022, 19023].map((port) => owners.filter((owner) => owner === port).length)
  const moves = events.filter((event) => event.event === "stopped").length
  return { perRunner, moves }
}))

const median = (values: ReadonlyArray<number>) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!

const main = Effect.gen(function*() {
  const rounds = Number(process.env.BENCH_ROUNDS ?? 3)
  const results: Record<string, Array<number>> = {}
  for (let i = 0; i < rounds; i++) {
    for (const [index, signal] of (["SIGKILL", "SIGSTOP", "SIGTERM"] as const).entries()) {
      const ms = yield* takeover(signal, 19001 + 2 * index)
      ;(results[signal] ??= []).push(ms)
      console.log(`round ${i + 1} ${signal}: ${ms} ms`)
    }
  }
  for (const [signal, values] of Object.entries(results)) {
    console.log(`${signal}: median ${median(values)} ms, min ${Math.min(...values)}, max ${Math.max(...values)}`)
  }
  const placement = yield* spread
  console.log(`five singletons on three runners: ${placement.perRunner.join("/")} after ${placement.moves} moves`)
  console.log(JSON.stringify({ bench: "cluster-takeover", results, placement }))
})

if (process.argv[2] === "runner") {
  runner(Number(process.argv[3]), process.argv[4]!, Number(process.argv[5] ?? 1))
} else {
  Effect.runPromise(main).then(() => process.exit(0), (error) => {
    console.error(error)
    process.exit(1)
  })
}
