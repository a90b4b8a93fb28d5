/**
 * What every command does before its work: read the whole configuration so a
 * bad key fails at once with its name, and install logging and tracing.
 */
import { Effect, Runtime, Schema } from "effect"
import * as ConfigSource from "../layers/ConfigSource.ts"
import * as Logging from "../layers/Logging.ts"
import * as Tracing from "../layers/Tracing.ts"
import { GatewayConfig } from "../services/GatewayConfig.ts"
import { ExitCode } from "../services/ExitCodes.ts"

export class InvalidConfiguration extends Schema.TaggedError<InvalidConfiguration>()("InvalidConfiguration", {
  detail: Schema.String
}) {
  override readonly [Runtime.errorExitCode] = ExitCode.config
  override get message(): string {
    return `Invalid configuration: ${this.detail}`
  }
}

export const validatedConfig = Effect.gen(function*() {
  return yield* GatewayConfig
}).pipe(Effect.mapError((error) => new InvalidConfiguration({ detail: ConfigSource.formatConfigError(error) })))

/** Provides configuration (env, then the file), JSON logging and tracing to a command; logs its failure. */
export const withRuntime = (configFile: string | undefined) =>
<A, E, R>(program: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    yield* validatedConfig
    return yield* program
  }).pipe(
    Effect.provide(Tracing.layer),
    // Any failure, a bad key included, is logged once as JSON by the logger
    // below; the process still exits with the failure's code.
    Logging.reportFailure,
    Effect.provide(Logging.layer),
    Effect.provide(ConfigSource.layer(configFile))
  )
