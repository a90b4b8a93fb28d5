/**
 * A configuration that cannot be used, with the key named as an operator sets
 * it (environment variable and config file path). Exits 78, which the systemd
 * unit does not restart (deploy/systemd/).
 */
import { Effect, Runtime, Schema } from "effect"
import { ExitCode } from "./ExitCodes.ts"
import { GatewayConfig } from "./GatewayConfig.ts"

export class InvalidConfiguration extends Schema.TaggedError<InvalidConfiguration>()("InvalidConfiguration", {
  detail: Schema.String
}) {
  override readonly [Runtime.errorExitCode] = ExitCode.config
  override get message(): string {
    return `Invalid configuration: ${this.detail}`
  }
}

/** Turns `["database","poolSize"]` into the names an operator can act on. */
export const describeConfigPath = (path: ReadonlyArray<string | number>): string => {
  const dotted = path.join(".")
  const env = path.map((segment) => String(segment).replace(/([a-z0-9])([A-Z])/g, "$1_$2").toUpperCase()).join("_")
  return `${env} (${dotted} in the config file)`
}

/** A configuration error as one readable line naming the key. */
export const formatConfigError = (error: { readonly cause: unknown }): string => {
  const text = String((error.cause as { message?: string })?.message ?? error.cause)
  return text.replace(/at ((?:\["[^"]+"\])+)/g, (_, pointer: string) => {
    const path = [...pointer.matchAll(/\["([^"]+)"\]/g)].map((match) => match[1] ?? "")
    return `at ${describeConfigPath(path)}`
  }).replace(/\s*\n\s*/g, " ")
}

/** The whole configuration, read at once so a bad key fails with its name before any work. */
export const validatedConfig = Effect.gen(function*() {
  return yield* GatewayConfig
}).pipe(Effect.mapError((error) => new InvalidConfiguration({ detail: formatConfigError(error) })))
