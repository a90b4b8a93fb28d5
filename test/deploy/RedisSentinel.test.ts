/**
 * Redis failover as deploy/redis/ configures it, on the test's own instances
 * (spare ports, temporary directories): a master, a replica of it and a
 * sentinel run from the shipped master.conf, replica.conf and sentinel.conf.
 * The gateway's ingestion finds the master through the sentinel; the test
 * kills the master (SIGKILL) while events flow, and the cache must be back on
 * the promoted replica within 10 s, the outage logged once, and every event
 * committed to PostgreSQL.
 */
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Effect, Fiber, Layer, PubSub, Redacted, Schedule } from "effect"
import { Redis } from "ioredis"
import { type ChildProcess, spawn } from "node:child_process"
import * as Fs from "node:fs/promises"
import * as Os from "node:os"
import * as Path from "node:path"
import { eventKey } from "../../src/domain/Message.ts"
import * as Gateway from "../../src/main/Daemon.ts"
import { Ingestion } from "../../src/programs/Ingestion.ts"
import { makeTestDatabase, query } from "../support/Database.ts"
import { created, freshChannelId, makeMessage } from "../support/TestEvents.ts"
import { uniqueName } from "../support/TestGateway.ts"
import { captureLogs } from "../telegram/Harness.ts"
import { deployPath } from "./Tools.ts"

const masterPort = 21379
const replicaPort = 21380
const sentinelPort = 21479
const masterName = "telegram-gateway"

/** A server from a shipped config, with the test's port and directory; SIGKILLed with the scope if still running. */
const startServer = (binary: string, config: string, args: ReadonlyArray<string>) =>
  Effect.acquireRelease(
    Effect.sync(() => spawn(binary, [config, ...args], { stdio: "ignore" })),
    (child) =>
      Effect.promise(async () => {
        if (child.exitCode !== null || child.signalCode !== null) return
        const exited = new Promise((resolve) => child.once("exit", resolve))
        child.kill("SIGKILL")
        await exited
      })
  )

const client = (port: number) =>
  Effect.acquireRelease(
    Effect.sync(() =>
      new Redis({ port, host: "127.0.0.1", lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => 200 })
        // Refused until the server listens: the checks below ask again.
        .on("error", () => {})
    ),
    (redis) => Effect.sync(() => redis.disconnect())
  )

const until = <A>(what: string, check: Effect.Effect<A>, done: (a: A) => boolean, timeout: number) =>
  check.pipe(
    Effect.repeat({ until: done, schedule: Schedule.spaced("100 millis") }),
    Effect.timeoutOrElse({ duration: timeout, orElse: () => Effect.die(new Error(`timed out waiting for ${what}`)) })
  )

const ask = <A>(redis: Redis, command: () => Promise<A>) => Effect.promise(() => command().catch(() => undefined))

describe("Redis Sentinel failover", () => {
  it.live("moves the cache to the promoted replica within 10 s while ingesting, logs it once, loses nothing", () =>
    Effect.gen(function*() {
      const directory = yield* Effect.acquireRelease(
        Effect.promise(() => Fs.mkdtemp(Path.join(Os.tmpdir(), "tg-sentinel-"))),
        (directory) => Effect.promise(() => Fs.rm(directory, { recursive: true, force: true }))
      )
      /** A copy of a shipped config in the test's directory (Redis needs `dir` to exist, Sentinel rewrites its file). */
      const copyConfig = (name: string, port: number, edit: (text: string) => string = (text) => text) =>
        Effect.promise(async () => {
          const home = Path.join(directory, name)
          await Fs.mkdir(home)
          const shipped = await Fs.readFile(deployPath("redis", `${name}.conf`), "utf8")
          const path = Path.join(home, `${name}.conf`)
          await Fs.writeFile(path, edit(shipped.replace(/^port \d+$/m, `port ${port}`).replace(/^dir .*$/m, `dir ${home}`)))
          return path
        })
      const ephemeral = ["--save", "", "--appendonly", "no", "--daemonize", "no"]
      const master: ChildProcess = yield* startServer("redis-server", yield* copyConfig("master", masterPort), ephemeral)
      yield* startServer(
        "redis-server",
        yield* copyConfig("replica", replicaPort, (text) => text.replace(/^replicaof .*$/m, `replicaof 127.0.0.1 ${masterPort}`)),
        ephemeral
      )
      // Pointed at the test's master; timings as shipped.
      const sentinelConfig = yield* copyConfig(
        "sentinel",
        sentinelPort,
        (text) => text.replace(/^(sentinel monitor \S+ 127\.0\.0\.1) \d+/m, `$1 ${masterPort}`)
      )
      yield* startServer("redis-sentinel", sentinelConfig, [])

      const sentinel = yield* client(sentinelPort)
      const replica = yield* client(replicaPort)
      yield* until(
        "the sentinel to know the master and its replica",
        ask(sentinel, () => sentinel.call("SENTINEL", "REPLICAS", masterName) as Promise<Array<unknown>>),
        (replicas) => Array.isArray(replicas) && replicas.length === 1,
        20_000
      )
      yield* until(
        "the replica to be in sync",
        ask(replica, () => replica.info("replication")),
        (info) => info?.includes("master_link_status:up") === true,
        20_000
      )

      const database = yield* makeTestDatabase("sentinel")
      const keyPrefix = `${uniqueName("tgsentinel")}:`
      const logs = captureLogs()
      const config = ConfigProvider.layer(ConfigProvider.fromUnknown({
        database: { url: Redacted.value(database.url), statementTimeout: "3 seconds", connectTimeout: "2 seconds", poolSize: 4 },
        redis: {
          url: "redis://127.0.0.1:6379/0",
          keyPrefix,
          sentinels: [`127.0.0.1:${sentinelPort}`],
          sentinelMasterName: masterName
        },
        rabbitmq: { exchange: uniqueName("sentinel.messages"), reconnectMaxDelay: "500 millis", publishTimeout: "2 seconds" },
        ingest: { batchSize: 200, flushInterval: "5 millis", tierTimeout: "3 seconds" }
      }))

      yield* Effect.gen(function*() {
        const ingestion = yield* Ingestion
        const progress = yield* ingestion.progress
        const channelId = freshChannelId()
        let next = 1
        const feeder = yield* Effect.gen(function*() {
          yield* ingestion.ingest(created(makeMessage(channelId, next++)))
        }).pipe(Effect.repeat(Schedule.spaced("50 millis")), Effect.forkChild)

        // Cached through the master first.
        yield* PubSub.take(progress).pipe(
          Effect.repeat({ until: (done) => done._tag === "HotPathDone" && done.cached, schedule: Schedule.recurs(10_000) })
        )
        const killedAt = Date.now()
        master.kill("SIGKILL")

        // An event that missed the cache (the master is gone), then the first one cached again: on the promoted replica.
        const recovered = yield* PubSub.take(progress).pipe(
          Effect.repeat({
            until: (done) => done._tag === "HotPathDone" && !done.cached,
            schedule: Schedule.recurs(100_000)
          }),
          Effect.andThen(PubSub.take(progress).pipe(
            Effect.repeat({ until: (done) => done._tag === "HotPathDone" && done.cached, schedule: Schedule.recurs(100_000) })
          )),
          Effect.timeoutOrElse({
            duration: "10 seconds",
            orElse: () => Effect.die(new Error(`the cache was not back within 10 s of the kill:\n${logs.lines.join("\n")}`))
          })
        )
        assert.isBelow(Date.now() - killedAt, 10_000)
        assert.strictEqual(recovered._tag, "HotPathDone")
        const role = yield* ask(replica, () => replica.call("ROLE") as Promise<Array<unknown>>)
        assert.strictEqual(role?.[0], "master", "the replica was promoted")
        if (recovered._tag === "HotPathDone") {
          const stored = yield* ask(replica, () => replica.exists(`${keyPrefix}msg:${eventKey(recovered.event)}`))
          assert.strictEqual(stored, 1, "the event is in the promoted replica's cache")
        }

        yield* Fiber.interrupt(feeder)
        const sent = next - 1
        yield* until(
          "every event committed",
          query<{ count: number }>(database, `SELECT count(*)::int AS count FROM messages WHERE channel_id = ${channelId}`).pipe(
            Effect.map((rows) => rows[0]?.count ?? 0),
            Effect.orDie
          ),
          (count) => count === sent,
          30_000
        )
        const down = logs.lines.filter((line) => line.includes("Redis cache unavailable"))
        assert.strictEqual(down.length, 1, logs.lines.join("\n"))
        assert.isTrue(logs.lines.some((line) => line.includes("Redis cache available again")))
      }).pipe(Effect.provide(Layer.fresh(Gateway.ingestion)), Effect.provide([config, logs.layer]))
    }).pipe(Effect.scoped), 120_000)
})
