/** `telegram-gateway run`: the daemon, until SIGTERM. */
import { Duration, Effect } from "effect"
import { Command } from "effect/cli"
import { withoutPassword } from "../../domain/WithoutPassword.ts"
import { validatedConfig } from "../../services/InvalidConfiguration.ts"
import { Daemon } from "../Gateway.ts"

const logStart = Effect.gen(function*() {
  const config = yield* validatedConfig
  yield* Effect.logInfo("telegram-gateway starting").pipe(Effect.annotateLogs({
    postgres: withoutPassword(config.database.url),
    redis: withoutPassword(config.redis.url),
    rabbitmq: withoutPassword(config.rabbitmq.url),
    exchange: config.rabbitmq.exchange,
    health: `http://${config.http.host}:${config.http.port}/health/ready`,
    batchSize: config.ingest.batchSize,
    flushIntervalMs: Duration.toMillis(config.ingest.flushInterval)
  }))
})

export const run = Command.make("run", {}, () =>
  Effect.gen(function*() {
    yield* logStart
    return yield* (yield* Daemon).run
  })).pipe(
    Command.withDescription(
      "Run the gateway daemon: ingest the configured chats into the three tiers, serve /health/live, /health/ready and /metrics, and on SIGTERM commit everything accepted before exiting"
    )
  )
