/**
 * A standalone simulator for manual use: starts one on a port, seeds a
 * channel and a supergroup, prints the session string, and (optionally)
 * posts to the channel on a timer. Stop it with Ctrl-C.
 *
 *   npx tsx src/simulator/main.ts --port 2443 --post-every 5
 *
 * A GramJS client reaches it with the printed session and
 * `connection: connectionToPort(<port>)` (GramJS ignores the session's port).
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as NodeServices from "@effect/platform-node/NodeServices"
import { Console, Effect, Option, Schedule } from "effect"
import { Command, Flag } from "effect/cli"
import { TelegramSimulator } from "./index.ts"

const simulator = Command.make(
  "telegram-simulator",
  {
    port: Flag.Int("port").pipe(
      Flag.withDescription("TCP port; keep it below 32768 so the session's signed port field stays readable"),
      Flag.withDefault(2443)
    ),
    host: Flag.String("host").pipe(Flag.withDescription("Address to listen on"), Flag.withDefault("127.0.0.1")),
    password: Flag.String("password").pipe(
      Flag.withDescription("Start signed out, requiring code 12345 and this two-step password to log in"),
      Flag.optional
    ),
    postEvery: Flag.Int("post-every").pipe(
      Flag.withDescription("Post a numbered message to the seeded channel every N seconds"),
      Flag.optional
    )
  },
  Effect.fn(function*({ host, password, port, postEvery }) {
    const sim = yield* TelegramSimulator.start({
      port,
      host,
      ...(Option.isSome(password) ? { authorized: false, password: password.value } : {})
    })
    const channel = sim.world.addChannel({ username: "sim_channel", title: "Simulated channel", kind: "channel" })
    sim.world.addChannel({ username: "sim_supergroup", title: "Simulated supergroup", kind: "supergroup" })
    sim.world.post(channel, { text: "Welcome to the simulated Telegram" })
    yield* Console.log(`Telegram simulator on ${sim.host}:${sim.port} (DC ${sim.dcId})`)
    yield* Console.log(`channels: @sim_channel (id ${channel.id}), @sim_supergroup`)
    yield* Console.log(`session: ${sim.sessionString}`)
    if (Option.isSome(postEvery)) {
      let count = 0
      yield* Effect.sync(() => sim.world.post(channel, { text: `Scheduled post ${++count}` })).pipe(
        Effect.repeat(Schedule.spaced(`${postEvery.value} seconds`)),
        Effect.forkScoped
      )
    }
    return yield* Effect.never
  }, Effect.scoped)
).pipe(Command.withDescription("An MTProto 2.0 server that real GramJS clients can talk to"))

simulator.pipe(Command.run({ version: "0.1.0" }), Effect.provide(NodeServices.layer), NodeRuntime.runMain)
