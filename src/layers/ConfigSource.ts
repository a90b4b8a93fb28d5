/**
 * Where configuration comes from: environment variables first (constant case:
 * `database.poolSize` is `DATABASE_POOL_SIZE`), then an optional JSON file
 * whose path is given by `--config` or `TELEGRAM_GATEWAY_CONFIG`.
 */
import { ConfigProvider, Effect, Runtime, Schema } from "effect"
import * as Fs from "node:fs/promises"
import { ExitCode } from "../services/ExitCodes.ts"

export class ConfigFileError extends Schema.TaggedError<ConfigFileError>()("ConfigFileError", {
  path: Schema.String,
  reason: Schema.String
}) {
  /** As for an invalid key. */
  override readonly [Runtime.errorExitCode] = ExitCode.config
  override get message(): string {
    return `Cannot use config file ${this.path}: ${this.reason}`
  }
}

const readJsonFile = (path: string) =>
  Effect.tryPromise({
    try: () => Fs.readFile(path, "utf8"),
    catch: (cause) => new ConfigFileError({ path, reason: (cause as Error).message })
  }).pipe(
    Effect.flatMap((text) =>
      Effect.try({
        try: () => JSON.parse(text) as unknown,
        catch: (cause) => new ConfigFileError({ path, reason: `not valid JSON (${(cause as Error).message})` })
      })
    ),
    Effect.filterOrFail(
      (json) => typeof json === "object" && json !== null && !Array.isArray(json),
      () => new ConfigFileError({ path, reason: "expected a JSON object at the top level" })
    )
  )

export const provider = (configFile: string | undefined) =>
  Effect.gen(function*() {
    const fromEnv = ConfigProvider.fromEnv().pipe(ConfigProvider.constantCase)
    const path = configFile ?? process.env["TELEGRAM_GATEWAY_CONFIG"]
    if (path === undefined || path === "") return fromEnv
    const json = yield* readJsonFile(path)
    return fromEnv.pipe(ConfigProvider.orElse(ConfigProvider.fromUnknown(json)))
  })

export const layer = (configFile: string | undefined) => ConfigProvider.layer(provider(configFile))
