/**
 * The daemon, as layers: the three tiers, the ingestion program on top of
 * them, the health/metrics endpoint and the Telegram source. `run` launches
 * it; tests and the demo build the same layers with their own configuration.
 */
import { Effect, Layer, Stream } from "effect"
import * as GramJsTelegramSource from "../layers/GramJsTelegramSource.ts"
import * as PgBouncerAdmin from "../layers/PgBouncerAdmin.ts"
import * as PgBusOutbox from "../layers/PgBusOutbox.ts"
import * as PgAccountLeases from "../layers/PgAccountLeases.ts"
import * as PgClient from "../layers/PgClient.ts"
import * as PgMessageQuery from "../layers/PgMessageQuery.ts"
import * as PgMessageStore from "../layers/PgMessageStore.ts"
import * as RabbitEventBus from "../layers/RabbitEventBus.ts"
import * as RedisMessageCache from "../layers/RedisMessageCache.ts"
import { readSession } from "../layers/SessionFile.ts"
import { TelegramConfig } from "../services/GatewayConfig.ts"
import { TelegramSource } from "../services/TelegramSource.ts"
import { runAccount } from "./AccountOwner.ts"
import { accountsOf } from "./Accounts.ts"
import { makeFleet } from "./Fleet.ts"
import * as AggregateRefresher from "./AggregateRefresher.ts"
import * as HealthServer from "./HealthServer.ts"
import * as Ingestion from "./Ingestion.ts"
import * as Ownership from "./Ownership.ts"
import * as PgBouncerPools from "./PgBouncerPools.ts"

/**
 * Redis, RabbitMQ and PostgreSQL, each from its configuration section, with
 * what the bus relay reads back from PostgreSQL (the committed events and its
 * mark).
 */
export const tiers = Layer.mergeAll(
  RedisMessageCache.layer,
  RabbitEventBus.layer,
  PgMessageStore.layer,
  PgBusOutbox.layer,
  PgMessageQuery.layer.pipe(Layer.provide(PgClient.layer))
)

/** The ingestion program with its tiers, which stay visible to callers. */
export const ingestion = Ingestion.layer.pipe(Layer.provideMerge(tiers))

/** Ingestion, tiers, the health endpoint, the aggregate refresher and the PgBouncer pool watcher: everything but the sources. */
export const daemon = Layer.mergeAll(
  HealthServer.layer,
  AggregateRefresher.layer.pipe(Layer.provide(PgClient.layer)),
  PgBouncerPools.layer.pipe(Layer.provide(PgBouncerAdmin.layer))
).pipe(
  Layer.provideMerge(Layer.merge(ingestion, Ownership.layer))
)

/** The Telegram source over MTProto, from `telegram.*`. */
export const telegram = GramJsTelegramSource.layer

/**
 * Feeds every batch of the source into ingestion. It ends only when the source
 * fails with a fatal session error; the process then exits with its code, after
 * the layers have committed everything accepted.
 */
export const receive = Effect.gen(function*() {
  const source = yield* TelegramSource
  const { ingestBatch } = yield* Ingestion.Ingestion
  yield* source.events.pipe(Stream.runForEach(ingestBatch))
  return yield* Effect.never
})

/**
 * Every configured account, each owned by one process of the fleet at a time
 * (src/programs/AccountOwner.ts): this process stands by for the accounts it
 * does not own. Ends only with a fatal error of an owned account's session.
 * On shutdown each owned account drains ingestion (running the `onCommitted`
 * of what it commits) while its source is still there to record that
 * progress, then closes its source and releases its lease.
 */
export const runAccounts = Effect.gen(function*() {
  const accounts = yield* accountsOf(yield* TelegramConfig)
  // Every session file is checked now, so a standby does not learn at take-over time that it cannot connect.
  yield* Effect.forEach(accounts, (spec) => readSession(spec.config.sessionFile), { discard: true })
  const fleet = yield* makeFleet(accounts.length)
  yield* Effect.forEach(accounts, (spec) => runAccount(spec, fleet), { concurrency: "unbounded", discard: true })
  return yield* Effect.never
}).pipe(Effect.scoped)

/** `runAccounts` with the daemon and the leases. */
export const runDaemon = runAccounts.pipe(Effect.provide(PgAccountLeases.layer), Effect.provide(daemon))
