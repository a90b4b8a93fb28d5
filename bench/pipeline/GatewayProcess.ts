/**
 * The gateway as its own process for the pipeline bench (bench/pipeline.ts
 * starts it with `fork`): the daemon's layers (`daemon` of src/main/Daemon.ts:
 * the three tiers, ingestion, the health endpoint, the refresher and pool
 * watcher), configured from the environment as `telegram-gateway run` is
 * (src/main/Runtime.ts), fed by `receive` (src/programs/Gateway.ts) from a
 * `TelegramSource`.
 * Only the source differs from the daemon: a feeder that makes synthetic
 * events on the parent's command, since the MTProto path over GramJS tops out
 * near 1,250 pushes a second (docs/benchmarks.md) and this bench needs 5,000.
 * The feeder lives only here, under bench/, never in the daemon's binary.
 *
 * Each event is stamped at receipt (`monotonicMs`, bench/pipeline/Protocol.ts)
 * as the feeder hands it over, and again when its batch's `onCommitted` runs,
 * which is when the real source would record its progress. One event per
 * source batch, as a push of one update gives.
 */
import { Deferred, Effect, Queue, Stream } from "effect"
import { ChannelId, MessageCreated, MessageId, Sender, TelegramMessage } from "../../src/domain/Message.ts"
import type { SourceBatch } from "../../src/domain/SourceBatch.ts"
import * as Daemon from "../../src/main/Daemon.ts"
import * as Runtime from "../../src/main/Runtime.ts"
import * as Gateway from "../../src/programs/Gateway.ts"
import { TelegramSource } from "../../src/services/TelegramSource.ts"
import { benchText, eventAt, type FromTarget, memoryMb, monotonicMs, type PhaseCommand, type ToTarget } from "./Protocol.ts"

const send = (message: FromTarget) => process.send?.(message)

const makeEvent = (channelId: number, messageId: number) =>
  new MessageCreated({
    message: new TelegramMessage({
      channelId: ChannelId.make(channelId),
      messageId: MessageId.make(messageId),
      date: 1_763_000_000 + messageId,
      editDate: null,
      sender: new Sender({ id: 42, kind: "channel", name: "Signals" }),
      text: benchText(messageId),
      entities: [],
      media: null,
      replyToMessageId: null,
      groupedId: null,
      views: 10,
      forwards: 0,
      raw: { _: "message", id: messageId }
    }),
    receivedAt: Date.now()
  })

const program = Effect.gen(function*() {
  // Room for a few batches: at full speed the feeder waits here, as the real
  // source waits while ingestion's queue is full.
  const batches = yield* Queue.bounded<SourceBatch>(64)
  const source = TelegramSource.of({
    events: Stream.fromQueue(batches),
    connectionState: Effect.succeed("connected"),
    channels: Effect.succeed([])
  })
  yield* Gateway.receive.pipe(Effect.provideService(TelegramSource, source), Effect.forkScoped)

  const runPhase = (command: PhaseCommand) =>
    Effect.gen(function*() {
      const receipts = new Array<number>(command.count).fill(0)
      const commits = new Array<number>(command.count).fill(0)
      let committed = 0
      const allCommitted = yield* Deferred.make<void>()
      const started = monotonicMs()
      for (let index = 0; index < command.count; index++) {
        if (command.rate !== null) {
          const wait = started + (index / command.rate) * 1000 - monotonicMs()
          if (wait >= 1) yield* Effect.sleep(Math.floor(wait))
        }
        const { channelId, messageId } = eventAt(command.channels, index)
        const event = makeEvent(channelId, messageId)
        receipts[index] = monotonicMs()
        yield* Queue.offer(batches, {
          events: [event],
          onCommitted: Effect.sync(() => {
            commits[index] = monotonicMs()
            if (++committed === command.count) Deferred.doneUnsafe(allCommitted, Effect.void)
          })
        })
      }
      yield* Deferred.await(allCommitted)
      send({ type: "phaseDone", id: command.id, receipts, commits, memoryMb: memoryMb() })
    })

  const commands = yield* Queue.unbounded<ToTarget>()
  process.on("message", (message: ToTarget) => Queue.offerUnsafe(commands, message))
  process.on("disconnect", () => Queue.offerUnsafe(commands, { type: "stop" }))
  send({ type: "ready" })
  while (true) {
    const command = yield* Queue.take(commands)
    if (command.type === "stop") return
    yield* runPhase(command)
  }
}).pipe(Effect.scoped, Effect.provide(Daemon.daemon))

Effect.runPromise(program.pipe(Effect.provide(Runtime.layer(undefined)))).then(
  () => process.exit(0),
  (error) => {
    console.error(error)
    process.exit(1)
  }
)
