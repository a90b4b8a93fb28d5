/**
 * The `telegram-gateway` CLI's composition root: the commands under the root
 * command, and their services from one provision on it, in the configuration
 * named by `--config`. Every service here connects only when a command uses
 * it, so `migrate` opens no Redis connection and `login` no daemon.
 */
import { Layer } from "effect"
import { Command } from "effect/cli"
import * as GramJsTelegramAccount from "../layers/GramJsTelegramAccount.ts"
import * as LegacyImport from "../layers/LegacyImport.ts"
import * as Migrations from "../layers/Migrations.ts"
import * as PgAccountLeases from "../layers/PgAccountLeases.ts"
import * as PgBackfillRequests from "../layers/PgBackfillRequests.ts"
import * as PgChannelRegistry from "../layers/PgChannelRegistry.ts"
import * as PgClient from "../layers/PgClient.ts"
import * as RabbitConsumer from "../layers/RabbitConsumer.ts"
import * as SessionFile from "../layers/SessionFile.ts"
import { backfill } from "../programs/commands/Backfill.ts"
import { channels } from "../programs/commands/Channels.ts"
import { db } from "../programs/commands/Db.ts"
import { demo } from "../programs/commands/Demo.ts"
import { login } from "../programs/commands/Login.ts"
import { logout } from "../programs/commands/Logout.ts"
import { migrate } from "../programs/commands/Migrate.ts"
import { rollback } from "../programs/commands/Rollback.ts"
import { configFile, root } from "../programs/commands/Root.ts"
import { run } from "../programs/commands/Run.ts"
import * as Daemon from "./Daemon.ts"
import * as Runtime from "./Runtime.ts"

/** What the commands use. The PostgreSQL pool of `database.url` opens its first connection on the first query. */
export const services = Layer.mergeAll(
  Migrations.layer,
  LegacyImport.layer,
  GramJsTelegramAccount.layer,
  SessionFile.layer,
  RabbitConsumer.layer,
  Daemon.layer,
  Layer.mergeAll(PgAccountLeases.layerNoDeps, PgBackfillRequests.layerNoDeps, PgChannelRegistry.layerNoDeps).pipe(
    Layer.provide(PgClient.layer)
  )
)

export const cli = root.pipe(
  Command.withSubcommands([run, migrate, rollback, db, login, logout, channels, backfill, demo]),
  Command.provide((flags) => services.pipe(Layer.provideMerge(Runtime.layer(configFile(flags)))))
)
