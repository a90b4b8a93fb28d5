/**
 * The daemon's composition root: each service made real on its library, and
 * the programs of src/programs/Gateway.ts on top, assembled here once. The
 * `run` command and the demo get it as the `Daemon` service; tests build the
 * same layers with their own configuration.
 */
import { Effect, Layer } from "effect"
import * as GramJsTelegramSource from "../layers/GramJsTelegramSource.ts"
import * as PgAccountLeases from "../layers/PgAccountLeases.ts"
import * as PgBackfillRequests from "../layers/PgBackfillRequests.ts"
import * as PgBouncerAdmin from "../layers/PgBouncerAdmin.ts"
import * as PgBusOutbox from "../layers/PgBusOutbox.ts"
import * as PgChannelRegistry from "../layers/PgChannelRegistry.ts"
import * as PgClient from "../layers/PgClient.ts"
import * as PgMessageQuery from "../layers/PgMessageQuery.ts"
import * as PgMessageStore from "../layers/PgMessageStore.ts"
import * as PgStorageHousekeeping from "../layers/PgStorageHousekeeping.ts"
import * as PgUpdateStateStore from "../layers/PgUpdateStateStore.ts"
import * as RabbitEventBus from "../layers/RabbitEventBus.ts"
import * as RedisMessageCache from "../layers/RedisMessageCache.ts"
import * as SessionFile from "../layers/SessionFile.ts"
import { Daemon, programs, runAccounts } from "../programs/Gateway.ts"
import * as Ingestion from "../programs/Ingestion.ts"
import { AccountSources } from "../services/AccountSources.ts"

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
export const daemon = programs.pipe(
  Layer.provide(Layer.merge(PgStorageHousekeeping.layer.pipe(Layer.provide(PgClient.layer)), PgBouncerAdmin.layer)),
  Layer.provideMerge(tiers)
)

/** The Telegram source over MTProto, from `telegram.*`. */
export const telegram = GramJsTelegramSource.layer

/**
 * Each owned account's source on GramJS, with stores made fresh for that
 * opening: the update state is written under this lease's epoch (layers are
 * memoised otherwise).
 */
export const accountSources = Layer.succeed(AccountSources, AccountSources.of({
  open: (config) =>
    GramJsTelegramSource.makeWith(config).pipe(
      Effect.provide(
        Layer.mergeAll(PgChannelRegistry.layerNoDeps, Layer.fresh(PgUpdateStateStore.layerNoDeps), PgBackfillRequests.layerNoDeps).pipe(
          Layer.provide(PgClient.layer)
        )
      )
    )
}))

/** The daemon with the leases, the session files and the account sources the accounts' owners use. */
export const accounts = Layer.mergeAll(daemon, PgAccountLeases.layer, SessionFile.layer, accountSources)

/**
 * The Daemon service: nothing is built until it is used, so every command can
 * be given it; each use builds the layers in the caller's configuration (the
 * demo's points `telegram.*` at the simulator).
 */
export const layer = Layer.succeed(Daemon, Daemon.of({
  run: runAccounts.pipe(Effect.provide(accounts)),
  withIngestion: (program) => program.pipe(Effect.provide(daemon), Effect.provide(telegram))
}))
