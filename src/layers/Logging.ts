/**
 * Logs as one JSON object per line on stdout (journald keeps each line as one
 * entry, and `journalctl -o cat | jq` reads them), or pretty for a terminal.
 */
import { Effect, Layer, Logger, References } from "effect"
import { LogConfig } from "../services/GatewayConfig.ts"

export const layer = Layer.unwrap(
  Effect.gen(function*() {
    const config = yield* LogConfig
    const logger = config.format === "json" ? Logger.consoleJson : Logger.consolePretty()
    return Layer.mergeAll(
      Logger.layer([logger]),
      Layer.succeed(References.MinimumLogLevel, config.level)
    )
  })
)
