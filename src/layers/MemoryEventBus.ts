/**
 * The EventBus in memory: every confirmed publish is kept in order, no
 * RabbitMQ. For programs built from layers in tests, where the logic between
 * the services is under test rather than the broker
 * (test/layers/RabbitEventBus.test.ts is for that). `beforePublish` decides
 * each event's outcome, so a test can make publishes fail, hang or time out
 * as a real broker can; a failed publish is not recorded.
 */
import { Effect, Layer } from "effect"
import type { MessageEvent } from "../domain/Message.ts"
import { type BusUnavailable, EventBus } from "../services/EventBus.ts"

export interface MemoryBusOptions {
  /** Runs before each event's publish; its failure (or hang) is that publish's. */
  readonly beforePublish?: (event: MessageEvent) => Effect.Effect<void, BusUnavailable>
  /** Runs for every ping. */
  readonly ping?: Effect.Effect<void, BusUnavailable>
}

export interface MemoryEventBus {
  /** Every confirmed publish, in confirm order (a republished event appears again, as on a broker). */
  readonly published: Array<MessageEvent>
}

export const make = (options: MemoryBusOptions = {}) =>
  Effect.sync(() => {
    const published: Array<MessageEvent> = []
    const publish = (event: MessageEvent) =>
      (options.beforePublish?.(event) ?? Effect.void).pipe(Effect.andThen(Effect.sync(() => {
        published.push(event)
      })))
    const bus = EventBus.of({
      publish,
      publishAll: (events) =>
        Effect.forEach(events, (event) => publish(event).pipe(Effect.as(undefined), Effect.catch(Effect.succeed)), {
          concurrency: "unbounded"
        }),
      ping: options.ping ?? Effect.void
    })
    return { bus, memory: { published } satisfies MemoryEventBus }
  })

/** The bus alone, as a layer. */
export const layer = (options: MemoryBusOptions = {}) =>
  Layer.effect(EventBus, Effect.map(make(options), ({ bus }) => bus))
