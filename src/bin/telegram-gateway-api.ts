#!/usr/bin/env node
/**
 * The `telegram-gateway-api` executable: the HTTP API for downstream
 * consumers (docs/api.md). Configuration as for the gateway: environment
 * first, then the JSON file named by TELEGRAM_GATEWAY_CONFIG.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Layer } from "effect"
import * as ConfigSource from "../layers/ConfigSource.ts"
import * as Logging from "../layers/Logging.ts"
import * as Tracing from "../layers/Tracing.ts"
import * as Server from "../programs/api/Server.ts"

const Main = Server.layer.pipe(
  Layer.provide([Logging.layer, Tracing.layer]),
  Layer.provide(ConfigSource.layer(undefined))
)

NodeRuntime.runMain(Layer.launch(Main))
