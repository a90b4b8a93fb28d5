#!/usr/bin/env node
/**
 * The `telegram-gateway-api` executable: the HTTP API for downstream
 * consumers (docs/api.md), composed in src/main/Api.ts. Configuration as for
 * the gateway: environment first, then the JSON file named by
 * TELEGRAM_GATEWAY_CONFIG. Logs as the gateway does (src/layers/Logging.ts),
 * its fatal error included; exits 0 when stopped by SIGTERM or Ctrl-C, 78 on
 * invalid configuration.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { main } from "../main/Api.ts"
import { teardown } from "../main/Runtime.ts"

// The failure is logged once by the runtime's report (src/main/Runtime.ts), as JSON.
NodeRuntime.runMain(main, { teardown, disableErrorReporting: true })
