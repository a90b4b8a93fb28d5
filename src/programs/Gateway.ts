/**
 * The daemon's programs, over the services: ingestion, the health/metrics
 * endpoint, the aggregate refresher and the PgBouncer pool watcher, and the
 * loop that owns the configured accounts. The layers that make the services
 * real are chosen at the edge (src/main/Daemon.ts), which also gives the
 * `run` command and the demo the assembled daemon as the `Daemon` service.
 */
import { Context, Effect, Layer, Stream } from "effect"
import { SessionFiles } from "../services/SessionFiles.ts"
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
 * Ingestion and ownership with the health endpoint, the aggregate refresher
 * and the PgBouncer pool watcher on top: everything but the sources. Needs
 * the tiers (MessageCache, EventBus, MessageStore, BusOutbox, MessageQuery),
 * StorageHousekeeping and PoolStats.
 */
export const programs = Layer.mergeAll(
  HealthServer.layer,
  AggregateRefresher.layer,
  PgBouncerPools.layer
).pipe(
  Layer.provideMerge(Layer.merge(Ingestion.layer, Ownership.layer))
)

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
  const sessions = yield* SessionFiles
  // Every session file is checked now, so a standby does not learn at take-over time that it cannot connect.
  yield* Effect.forEach(accounts, (spec) => sessions.keyId(spec.config.sessionFile), { discard: true })
  const fleet = yield* makeFleet(accounts.length)
  yield* Effect.forEach(accounts, (spec) => runAccount(spec, fleet), { concurrency: "unbounded", discard: true })
  return yield* Effect.never
}).pipe(Effect.scoped)

/**
 * The daemon as assembled at the edge (src/main/Daemon.ts). `run` is
 * `runAccounts` on the live layers until a fatal error; `withGateway` runs a
 * program (the demo's) beside ingestion and a single source of `telegram.*`,
 * as the daemon would, and closes them after it.
 */
export class Daemon extends Context.Service<Daemon, {
  readonly run: Effect.Effect<never, unknown>
  readonly withIngestion: <A, E>(
    program: Effect.Effect<A, E, Ingestion.Ingestion | TelegramSource>
  ) => Effect.Effect<A, unknown>
}>()("telegram-gateway/Daemon") {}
