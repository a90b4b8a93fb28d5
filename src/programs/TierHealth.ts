/**
 * Tracks whether an optional tier is up, so that an outage is logged once
 * when it starts and once when it ends, not once per message, while every
 * failed attempt is still counted.
 */
import { Effect, Metric, Ref } from "effect"
import * as Metrics from "../services/Metrics.ts"

export type Tier = "redis" | "rabbitmq" | "postgres"

export interface TierHealth {
  readonly tier: Tier
  readonly succeeded: Effect.Effect<void>
  /** Counts `count` failures (events that missed the tier, or attempts), logging only when the tier goes down. */
  readonly failed: (error: { readonly message: string }, count?: number) => Effect.Effect<void>
}

export interface TierHealthOptions {
  readonly tier: Tier
  /** Counted on every failure. */
  readonly failures: Metric.Counter<number>
  /** Logged as a warning when the tier goes down. */
  readonly downMessage: string
  /** Logged when it answers again. */
  readonly upMessage: string
}

export const makeTierHealth = (options: TierHealthOptions): Effect.Effect<TierHealth> =>
  Effect.gen(function*() {
    const up = yield* Ref.make(true)
    const gauge = Metrics.tierUp.pipe(Metric.withAttributes({ tier: options.tier }))
    yield* Metric.update(gauge, 1)

    const succeeded = Ref.getAndSet(up, true).pipe(
      Effect.flatMap((wasUp) =>
        wasUp
          ? Effect.void
          : Effect.logInfo(options.upMessage).pipe(
            Effect.annotateLogs({ tier: options.tier }),
            Effect.andThen(Metric.update(gauge, 1))
          )
      )
    )

    const failed = (error: { readonly message: string }, count = 1) =>
      Metric.update(options.failures, count).pipe(
        Effect.andThen(Ref.getAndSet(up, false)),
        Effect.flatMap((wasUp) =>
          wasUp
            ? Effect.logWarning(options.downMessage).pipe(
              Effect.annotateLogs({ tier: options.tier, error: error.message }),
              Effect.andThen(Metric.update(gauge, 0))
            )
            : Effect.void
        )
      )

    return { tier: options.tier, succeeded, failed }
  })
