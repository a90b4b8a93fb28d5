/**
 * The fault suite's harness: the real gateway (`telegram-gateway run`, a
 * child process) between the Telegram simulator (in the test process, so it
 * outlives the gateway) and private instances of PostgreSQL, PgBouncer, Redis
 * and RabbitMQ (test/support/SideServices.ts) that a test may stop, kill or
 * cut. A producer posts, edits and deletes in the simulated channel at a
 * steady rate and records every stable key it caused; after the fault heals,
 * `verify` holds PostgreSQL and the bus to exactly that.
 */
import * as Amqp from "amqplib"
import { Redis } from "ioredis"
import { writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Context, Duration, Effect, Exit, type Fiber, Layer, Redacted, type Scope } from "effect"
import { declareConsumerQueue } from "../../src/layers/RabbitTopology.ts"
import { writeSession } from "../../src/layers/SessionFile.ts"
import { TelegramSimulator } from "../../src/simulator/index.ts"
import { makeTestDatabase, query, type TestDatabase } from "../support/Database.ts"
import { type GatewayProcess, simulatorEnv, startGatewayProcess } from "../support/GatewayProcess.ts"
import {
  type SidePostgres,
  sidePgBouncer,
  type SideProcess,
  sidePostgres,
  type SideRabbitMq,
  sideRabbitMq,
  sideRedis
} from "../support/SideServices.ts"
import { makeTcpProxy, type TcpProxy } from "../support/TcpProxy.ts"
import { uniqueName } from "../support/TestGateway.ts"
import { makeSessionDirectory } from "../telegram/Harness.ts"

export class SideStack extends Context.Service<SideStack, {
  readonly postgres: SidePostgres
  readonly pgbouncer: SideProcess
  readonly redis: SideProcess
  readonly rabbitmq: SideRabbitMq
}>()("test/SideStack") {
  static readonly layer = Layer.effect(
    SideStack,
    Effect.gen(function*() {
      const postgres = yield* sidePostgres(17432)
      const pgbouncer = yield* sidePgBouncer(17434, postgres.port)
      const redis = yield* sideRedis(17379)
      const rabbitmq = yield* sideRabbitMq(17672)
      return SideStack.of({ postgres, pgbouncer, redis, rabbitmq })
    })
  )
}

export const downMessages = {
  postgres: "PostgreSQL unavailable, holding accepted events in memory and retrying",
  redis: "Redis cache unavailable, falling back to database-only",
  rabbitmq: "RabbitMQ unavailable, events are stored and the bus relay will publish them"
} as const

/** What the producer caused in Telegram: every stable key, and which messages are deleted. */
export interface Produced {
  readonly keys: Set<string>
  readonly deleted: Set<number>
}

export interface Scenario {
  readonly gateway: () => GatewayProcess
  readonly database: TestDatabase
  readonly channelId: number
  readonly produced: Produced
  /** Posts, edits and deletes at `rate` events per second until stopped. */
  readonly produce: (rate: number) => Effect.Effect<Fiber.Fiber<never>, never, Scope.Scope>
  /** Starts the gateway again (after a kill), with the same configuration. */
  readonly restartGateway: Effect.Effect<GatewayProcess, never, Scope.Scope>
  /** Waits until PostgreSQL holds every produced key, then checks it and the bus exactly. */
  readonly verify: Effect.Effect<{ readonly committed: number; readonly delivered: number; readonly duplicates: number }>
  /** How many times the gateway's output (over every run) contains `text`. */
  readonly logged: (text: string) => number
  /** Stable keys among `keys` that Redis holds no cache entry for. */
  readonly uncached: (keys: ReadonlyArray<string>) => Effect.Effect<ReadonlyArray<string>>
}

export interface ScenarioOptions {
  /** Put a TCP proxy between the gateway and PgBouncer / RabbitMQ. */
  readonly pgbouncerProxy?: TcpProxy
  readonly rabbitmqProxy?: TcpProxy
}

/** A proxy in front of one of the side services. */
export const proxyTo = (port: number) => makeTcpProxy({ host: "127.0.0.1", port })

export const startScenario = (name: string, options: ScenarioOptions = {}) =>
  Effect.gen(function*() {
    const stack = yield* SideStack
    const servers = {
      postgresAddress: `127.0.0.1:${stack.postgres.port}`,
      pgbouncerAddress: `127.0.0.1:${options.pgbouncerProxy?.port ?? stack.pgbouncer.port}`
    }
    const database = yield* makeTestDatabase(name, { servers })
    // As Telegram: a difference is "too long" only far behind (about 100,000
    // updates), not after the few thousand a loaded test machine may lag.
    const simulator = yield* TelegramSimulator.start({ differenceTooLongAfter: 100_000 })
    const channel = simulator.world.addChannel({ username: uniqueName("faults").slice(0, 24), title: "Faults", kind: "channel" })
    const sessionFile = yield* makeSessionDirectory
    yield* writeSession(sessionFile, Redacted.make(simulator.sessionString))
    const exchange = uniqueName("faults.messages")
    const rabbitPort = options.rabbitmqProxy?.port ?? stack.rabbitmq.port
    const keyPrefix = `${uniqueName("faults")}:`

    // The consumer's queue exists before the first publish, and outlives the broker's restarts.
    const queue = uniqueName("faults_consumer")
    yield* withAmqp(stack.rabbitmq.port, (channel) =>
      declareConsumerQueue(channel, { exchange, queue, bindingKeys: ["#"] }).pipe(Effect.orDie))

    const env: Record<string, string> = {
      DATABASE_URL: Redacted.value(database.url),
      DATABASE_MIGRATION_URL: Redacted.value(database.migrationUrl),
      DATABASE_CONNECT_TIMEOUT: "2 seconds",
      REDIS_URL: `redis://127.0.0.1:${stack.redis.port}/0`,
      REDIS_KEY_PREFIX: keyPrefix,
      RABBITMQ_URL: `amqp://guest:guest@127.0.0.1:${rabbitPort}`,
      RABBITMQ_EXCHANGE: exchange,
      RABBITMQ_RECONNECT_MAX_DELAY: "1 second",
      ...simulatorEnv(simulator, sessionFile, `@${channel.username}`),
      TELEGRAM_POLL_INTERVAL: "2 seconds"
    }
    const outputs: Array<GatewayProcess> = []
    // After a failure each run's output stays in the temporary directory, for reading; a passing test leaves nothing.
    yield* Effect.addFinalizer((exit) =>
      Exit.isSuccess(exit) ? Effect.void : Effect.promise(() =>
        Promise.all(outputs.map((gateway, run) => writeFile(join(tmpdir(), `${database.name}-gateway-${run}.log`), gateway.output())))
      ).pipe(Effect.ignore)
    )
    const launch = Effect.gen(function*() {
      const gateway = yield* startGatewayProcess({ env })
      outputs.push(gateway)
      return gateway
    })
    let current = yield* launch

    const produced: Produced = { keys: new Set(), deleted: new Set() }
    const live: Array<number> = []
    let step = 0
    const act = () => {
      step++
      if (step % 10 === 0 && live.length > 5) {
        const id = live.splice(Math.floor(live.length / 2), 1)[0]!
        simulator.world.delete(channel.id, [id])
        produced.deleted.add(id)
        produced.keys.add(`${channel.id}:${id}:deleted`)
      } else if (step % 4 === 0 && live.length > 0) {
        const id = live[live.length - 1 - (step % Math.min(live.length, 20))]!
        const edited = simulator.world.edit(channel.id, id, `edit ${step} of ${id}`)
        produced.keys.add(`${channel.id}:${id}:${edited.editDate}`)
      } else {
        const posted = simulator.world.post(channel.id, { text: `post ${step}` })
        live.push(posted.id)
        produced.keys.add(`${channel.id}:${posted.id}:0`)
      }
    }
    const produce = (rate: number) =>
      Effect.gen(function*() {
        const tick = 1000 / rate
        const started = Date.now()
        let done = 0
        while (true) {
          const due = Math.floor((Date.now() - started) / tick)
          for (; done < due; done++) act()
          yield* Effect.sleep(Duration.millis(Math.max(1, tick)))
        }
      }).pipe(Effect.forkScoped)

    // The gateway is ready once it has read the channel (its first read starts
    // from now) and committed a first post.
    yield* current.waitForLog(/first read, starting at pts/, "60 seconds")
    const first = simulator.world.post(channel.id, { text: "first" })
    live.push(first.id)
    produced.keys.add(`${channel.id}:${first.id}:0`)
    yield* awaitCommitted(database, 1, "60 seconds", () => current.output())

    const verify = Effect.gen(function*() {
      const expected = produced.keys
      yield* awaitCommitted(database, expected.size, "180 seconds", () => current.output())
      const stored = yield* storedKeys(database)
      const missing = [...expected].filter((key) => !stored.has(key))
      const unexpected = [...stored].filter((key) => !expected.has(key))
      if (missing.length > 0 || unexpected.length > 0) {
        return yield* Effect.die(new Error(
          `PostgreSQL differs from Telegram: ${missing.length} missing (${missing.slice(0, 5).join(", ")}), ${unexpected.length} unexpected (${
            unexpected.slice(0, 5).join(", ")
          })`
        ))
      }
      const undeleted = yield* query<{ count: number }>(
        database,
        `SELECT count(*)::int AS count FROM messages WHERE deleted_at IS NULL AND message_id = ANY(ARRAY[${
          [...produced.deleted, 0].join(",")
        }]::integer[])`
      )
      if ((undeleted[0]?.count ?? 0) > 0) {
        return yield* Effect.die(new Error(`${undeleted[0]?.count} versions of deleted messages are not marked deleted`))
      }
      const delivered = yield* drainQueue(stack.rabbitmq.port, queue, stored)
      return { committed: stored.size, delivered: delivered.total, duplicates: delivered.total - delivered.unique }
    }).pipe(Effect.orDie)

    return {
      gateway: () => current,
      database,
      channelId: channel.id,
      produced,
      produce,
      restartGateway: launch.pipe(Effect.tap((gateway) => Effect.sync(() => (current = gateway)))),
      verify,
      logged: (text: string) => outputs.reduce((count, gateway) => count + gateway.output().split(text).length - 1, 0),
      uncached: (keys) =>
        Effect.acquireUseRelease(
          Effect.sync(() => new Redis({ port: stack.redis.port, host: "127.0.0.1", lazyConnect: false })),
          (redis) =>
            Effect.promise(async () => {
              const missing: Array<string> = []
              for (const key of keys) {
                if ((await redis.exists(`${keyPrefix}msg:${key}`)) === 0) missing.push(key)
              }
              return missing
            }),
          (redis) => Effect.sync(() => redis.disconnect())
        )
    } satisfies Scenario
  })

const withAmqp = <A, E>(port: number, use: (channel: Amqp.Channel) => Effect.Effect<A, E>) =>
  Effect.acquireUseRelease(
    Effect.promise(() => Amqp.connect(`amqp://guest:guest@127.0.0.1:${port}`)),
    (connection) => Effect.promise(() => connection.createChannel()).pipe(Effect.flatMap(use)),
    (connection) => Effect.promise(() => connection.close()).pipe(Effect.ignore)
  )

/** Every stable key stored: message versions and deletions. */
export const storedKeys = (database: TestDatabase) =>
  query<{ key: string }>(
    database,
    `SELECT channel_id || ':' || message_id || ':' || version AS key FROM messages
     UNION ALL SELECT channel_id || ':' || message_id || ':deleted' FROM message_deletions`
  ).pipe(Effect.map((rows) => new Set(rows.map((row) => row.key))))

const awaitCommitted = (database: TestDatabase, count: number, timeout: Duration.Input, output: () => string) =>
  Effect.gen(function*() {
    while (true) {
      const rows = yield* query<{ count: number }>(
        database,
        "SELECT ((SELECT count(*) FROM messages) + (SELECT count(*) FROM message_deletions))::int AS count"
      ).pipe(Effect.orElseSucceed(() => [{ count: 0 }]))
      if ((rows[0]?.count ?? 0) >= count) return
      yield* Effect.sleep("250 millis")
    }
  }).pipe(
    Effect.timeoutOrElse({
      duration: timeout,
      orElse: () => Effect.die(new Error(`PostgreSQL never reached ${count} events; gateway output:\n${output().slice(-4000)}`))
    })
  )

/**
 * Reads the consumer queue until every committed key has arrived (the relay
 * may still be catching up) or nothing more comes; fails naming what is missing.
 */
const drainQueue = (port: number, queue: string, committed: ReadonlySet<string>) =>
  withAmqp(port, (channel) =>
    Effect.gen(function*() {
      const seen = new Set<string>()
      let total = 0
      let idleSince = Date.now()
      while (true) {
        const message = yield* Effect.promise(() => channel.get(queue, { noAck: true }))
        if (message === false) {
          if ([...committed].every((key) => seen.has(key)) || Date.now() - idleSince > 30_000) break
          yield* Effect.sleep("200 millis")
          continue
        }
        idleSince = Date.now()
        total++
        seen.add(String(message.properties.messageId))
      }
      const missing = [...committed].filter((key) => !seen.has(key))
      if (missing.length > 0) {
        return yield* Effect.die(
          new Error(`${missing.length} committed event(s) never reached the bus, e.g. ${missing.slice(0, 5).join(", ")}`)
        )
      }
      return { total, unique: seen.size }
    }))
