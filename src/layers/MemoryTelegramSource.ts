/**
 * The TelegramSource in memory: no MTProto, no simulator. A test hands it
 * source batches (and, when it wants, the fatal error a refused session ends
 * the stream with), and sets the connection state and channel statuses that
 * /health/ready reports. For the logic between the source and ingestion (a
 * batch's `onCommitted` after its commit, in order); the real engine is
 * tested against the simulator in test/telegram/.
 */
import { Effect, Layer, Queue, Ref, Stream } from "effect"
import type { SourceBatch } from "../domain/SourceBatch.ts"
import { type ChannelStatus, type ConnectionState, type TelegramFatal, TelegramSource } from "../services/TelegramSource.ts"

export interface MemoryTelegramSource {
  /** The next batch of the stream, as a push or a difference would give it. */
  readonly push: (batch: SourceBatch) => Effect.Effect<void>
  /** Ends the stream with a refused session, as Telegram's AUTH_KEY_UNREGISTERED would. */
  readonly refuse: (fatal: TelegramFatal) => Effect.Effect<void>
  readonly setConnectionState: (state: ConnectionState) => Effect.Effect<void>
  readonly setChannels: (channels: ReadonlyArray<ChannelStatus>) => Effect.Effect<void>
}

export const make = Effect.gen(function*() {
  const batches = yield* Queue.unbounded<SourceBatch, TelegramFatal>()
  const connection = yield* Ref.make<ConnectionState>("connected")
  const channels = yield* Ref.make<ReadonlyArray<ChannelStatus>>([])
  const source = TelegramSource.of({
    events: Stream.fromQueue(batches),
    connectionState: Ref.get(connection),
    channels: Ref.get(channels)
  })
  const memory: MemoryTelegramSource = {
    push: (batch) => Queue.offer(batches, batch).pipe(Effect.asVoid),
    refuse: (fatal) => Queue.fail(batches, fatal).pipe(Effect.asVoid),
    setConnectionState: (state) => Ref.set(connection, state),
    setChannels: (statuses) => Ref.set(channels, statuses)
  }
  return { source, memory }
})

/** The source alone, as a layer (its memory side is not reachable: use `make` to drive it). */
export const layer = Layer.effect(TelegramSource, Effect.map(make, ({ source }) => source))
