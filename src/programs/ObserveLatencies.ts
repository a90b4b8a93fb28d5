/**
 * One histogram observation per event, for a batch in one step: the same
 * observations as a `Metric.update` per event (Metric.ts's `update` is
 * `updateUnsafe` with the fiber's context), without an Effect for each.
 */
import { type Context, Effect, type Metric } from "effect"
import type { MessageEvent } from "../domain/Message.ts"

/** Observes, in seconds, how long before `at` (epoch ms) each event was received: by plain calls on a fiber's context. */
export const observeLatenciesUnsafe = (
  histogram: Metric.Metric<number, unknown>,
  events: ReadonlyArray<MessageEvent>,
  at: number,
  context: Context.Context<never>
): void => {
  for (const event of events) histogram.updateUnsafe(Math.max(0, at - event.receivedAt) / 1000, context)
}

/** `observeLatenciesUnsafe` on the current fiber's context. */
export const observeLatencies = (
  histogram: Metric.Metric<number, unknown>,
  events: ReadonlyArray<MessageEvent>,
  at: number
): Effect.Effect<void> =>
  Effect.contextWith((context) => {
    observeLatenciesUnsafe(histogram, events, at, context)
    return Effect.void
  })
