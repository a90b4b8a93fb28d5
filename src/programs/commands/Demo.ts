/**
 * `telegram-gateway demo`: the gateway against the built-in Telegram
 * simulator, for a first look without a Telegram account. A simulated signals
 * channel posts messages (with edits and deletions) over real MTProto; the
 * real gateway ingests them into the local Redis, RabbitMQ and PostgreSQL;
 * a live view shows each tier. Ends on Ctrl-C, after `--duration`, or once
 * `--messages` are posted and committed; prints a summary and exits 0.
 */
import { Clock, ConfigProvider, type Duration, Effect, Fiber, FileSystem, Option, Schema } from "effect"
import { Command, Flag } from "effect/cli"
import { join } from "node:path"
import { BusConsumer } from "../../services/BusConsumer.ts"
import { Migrations } from "../../services/Migrations.ts"
import { TelegramSimulator } from "../../simulator/index.ts"
import { runSignalChannel, type SignalCounts } from "../demo/SignalChannel.ts"
import { collect, describe, emptyTally, render } from "../demo/LiveView.ts"
import { Daemon, receive } from "../Gateway.ts"
import { Ingestion } from "../Ingestion.ts"

/** A session file for the simulator, in a private temporary directory removed when the demo ends. */
const simulatorSessionFile = (sessionString: string) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const directory = yield* fs.makeTempDirectoryScoped({ prefix: "telegram-gateway-demo-" })
    yield* fs.chmod(directory, 0o700)
    const file = join(directory, "telegram.session")
    yield* fs.writeFileString(file, sessionString, { mode: 0o600 })
    return file
  }).pipe(Effect.orDie)

const program = (options: {
  readonly duration: Option.Option<Duration.Duration>
  readonly messages: Option.Option<number>
  readonly rate: number
}) =>
  Effect.gen(function*() {
    const consumers = yield* BusConsumer
    const daemon = yield* Daemon
    yield* (yield* Migrations).migrate.pipe(Effect.tap((applied) =>
      applied.length > 0 ? Effect.logInfo(`Applied ${applied.length} migrations`) : Effect.void
    ))
    const simulator = yield* TelegramSimulator.start()
    // A channel id of its own per run, so a second demo is not deduplicated against the first.
    const runStartedAt = yield* Clock.currentTimeMillis
    const channel = simulator.world.addChannel({
      id: 1_500_000_000 + (Math.floor(runStartedAt / 1000) % 500_000_000),
      username: `signals_${runStartedAt.toString(36)}`,
      title: "Demo Signals",
      kind: "channel"
    })
    const sessionFile = yield* simulatorSessionFile(simulator.sessionString)
    const telegram = ConfigProvider.layerAdd(
      ConfigProvider.fromUnknown({
        telegram: {
          apiId: 1,
          apiHash: "demo",
          sessionFile,
          channels: [`@${channel.username}`],
          dcId: simulator.dcId,
          dcAddress: simulator.host,
          dcPort: simulator.port
        }
      }),
      { asPrimary: true }
    )

    yield* Effect.gen(function*() {
      const ingestion = yield* Ingestion
      const consumer = yield* consumers.counting({
        queue: "telegram-gateway.demo",
        bindingKeys: [`*.${channel.id}`],
        deleteOnClose: true
      })
      const tally = emptyTally()
      const posted: SignalCounts = { posted: 0, edited: 0, deleted: 0 }
      const startedAt = yield* Clock.currentTimeMillis
      yield* collect(ingestion, tally).pipe(Effect.forkScoped)
      yield* receive.pipe(Effect.forkScoped)
      // A chat the gateway has never read starts from its newest message, so
      // the channel starts posting once the gateway has looked at it.
      yield* Effect.sleep("50 millis").pipe(
        Effect.repeat({ until: () => simulator.callCount("messages.GetHistory") > 0 }),
        Effect.timeoutOrElse({
          duration: "20 seconds",
          orElse: () => Effect.logWarning("The gateway has not read the simulated channel yet; posting anyway")
        })
      )
      const view = yield* render(tally, posted, startedAt).pipe(Effect.forkScoped)
      const poster = yield* runSignalChannel({
        world: simulator.world,
        channel: channel.id,
        rate: options.rate,
        limit: Option.getOrUndefined(options.messages),
        counts: posted
      }).pipe(Effect.forkScoped)

      const allCommitted = Effect.gen(function*() {
        yield* Fiber.join(poster)
        yield* Effect.sleep("1500 millis") // the last edits and deletions are posted after their message
        while (tally.committed < posted.posted + posted.edited + posted.deleted) yield* Effect.sleep("100 millis")
      }).pipe(
        Effect.timeoutOrElse({
          duration: "30 seconds",
          orElse: () => Effect.logWarning("Not every posted message was committed within 30 s of the last post")
        })
      )
      yield* Option.match(options.duration, {
        onNone: () => Option.isSome(options.messages) ? allCommitted : Effect.never,
        onSome: (duration) => Effect.sleep(duration)
      })
      yield* Fiber.interrupt(view)
      yield* Effect.sleep("300 millis")
      const delivered = yield* consumer.received
      const seconds = ((yield* Clock.currentTimeMillis) - startedAt) / 1000
      process.stdout.write(
        `\nSummary\n${describe(tally, posted, seconds).map((line) => `  ${line}`).join("\n")}\n  consumer  queue telegram-gateway.demo received ${delivered}\n`
      )
    }).pipe(Effect.scoped, daemon.withIngestion, Effect.provide(telegram))
  }).pipe(Effect.scoped)

export const demo = Command.make("demo", {
  duration: Flag.String("duration").pipe(
    Flag.withDescription("Stop after this long, e.g. \"30 seconds\" or \"2 minutes\" (default: until Ctrl-C)"),
    Flag.withSchema(Schema.DurationFromString),
    Flag.optional
  ),
  messages: Flag.Int("messages").pipe(
    Flag.withDescription("Post this many messages, then stop once all of them (and their edits and deletions) are committed"),
    Flag.optional
  ),
  rate: Flag.Int("rate").pipe(Flag.withDescription("Messages the simulated channel posts per second (default: 20)"), Flag.withDefault(20))
}, (options) =>
  program(options)).pipe(
    Command.withDescription(
      "Run the gateway against the built-in Telegram simulator (no account needed) with the local Redis, RabbitMQ and PostgreSQL, and show messages flowing into each tier"
    )
  )
