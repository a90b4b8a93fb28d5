#!/usr/bin/env node
/** The `telegram-gateway` executable. */
import { NodeRuntime, NodeServices } from "@effect/platform-node"
import { Effect, Runtime } from "effect"
import { Command } from "effect/cli"
import { root } from "../programs/commands/Root.ts"
import { backfill } from "../programs/commands/Backfill.ts"
import { channels } from "../programs/commands/Channels.ts"
import { db } from "../programs/commands/Db.ts"
import { demo } from "../programs/commands/Demo.ts"
import { login } from "../programs/commands/Login.ts"
import { logout } from "../programs/commands/Logout.ts"
import { migrate } from "../programs/commands/Migrate.ts"
import { rollback } from "../programs/commands/Rollback.ts"
import { run } from "../programs/commands/Run.ts"

/** A stop by SIGTERM or Ctrl-C after a clean drain is a success, not 130. */
const teardown: Runtime.Teardown = (exit, onExit) =>
  Runtime.defaultTeardown(exit, (code) => onExit(code === 130 ? 0 : code))

root.pipe(
  Command.withSubcommands([run, migrate, rollback, db, login, logout, channels, backfill, demo]),
  Command.run({ version: "0.1.0" }),
  Effect.provide(NodeServices.layer),
  NodeRuntime.runMain({ teardown })
)
