#!/usr/bin/env node
/** The `telegram-gateway` executable: the CLI of src/main/Cli.ts. */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as NodeServices from "@effect/platform-node/NodeServices"
import { Effect } from "effect"
import { Command } from "effect/cli"
import { cli } from "../main/Cli.ts"
import { teardown } from "../main/Runtime.ts"

cli.pipe(
  Command.run({ version: "0.1.0" }),
  Effect.provide(NodeServices.layer),
  // A command's failure is logged once by its runtime (src/main/Runtime.ts), as JSON.
  NodeRuntime.runMain({ teardown, disableErrorReporting: true })
)
