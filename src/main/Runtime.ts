/**
 * What every binary runs under: the configuration (environment first, then
 * the JSON file), validated whole so a bad key fails at once with its name,
 * JSON logging and tracing.
 */
import { Layer, Runtime } from "effect"
import * as ConfigSource from "../layers/ConfigSource.ts"
import * as Logging from "../layers/Logging.ts"
import * as Tracing from "../layers/Tracing.ts"
import { validatedConfig } from "../services/InvalidConfiguration.ts"

/** A stop by SIGTERM or Ctrl-C (after a clean drain) is a success, not 130. */
export const teardown: Runtime.Teardown = (exit, onExit) =>
  Runtime.defaultTeardown(exit, (code) => onExit(code === 130 ? 0 : code))

/**
 * The configuration of `configFile` (else $TELEGRAM_GATEWAY_CONFIG), checked
 * first; logging; tracing; and the report of a failure of what runs under it
 * (Logging.failureReport), built right after the logger so even a failure of
 * the configuration check is logged as JSON before the process exits 78.
 */
export const layer = (configFile: string | undefined) =>
  // No spans at all without a collector (Tracing.offWithoutCollector).
  Layer.merge(Tracing.layer, Tracing.offWithoutCollector).pipe(
    Layer.provideMerge(Layer.effectDiscard(validatedConfig)),
    Layer.provideMerge(Logging.failureReport),
    Layer.provideMerge(Logging.layer),
    Layer.provideMerge(ConfigSource.layer(configFile))
  )
