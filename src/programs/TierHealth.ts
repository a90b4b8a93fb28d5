/**
 * Tracks whether an optional tier is up, so that an outage is logged once
 * when it starts and once when it ends, not once per message, while every
 * failed attempt is still counted.
 *
 * Attempts overlap (several workers, batches in flight), so an attempt that
 * began before the outage may succeed after the first failure was seen: it
 * says nothing about the tier now. `succeeded` takes when its attempt began
 * (`began()`), and only an attempt begun since the outage started ends it.
 *
 * A tier that fails again soon after it recovered (a database working through
 * a backlog, a broker still starting) is the same incident: the relapse is
 * logged at info level, not as a new warning, while the gauge and the
 * failure counter still tell the truth.
 *
 * Other loops reach the same tier (a standby reading its lease, the fleet's
 * heartbeat, both waiting for PostgreSQL at start while no event is written):
 * they report what they see with `observed`, and the gauge says down while
 * either the tier's own attempts or theirs fail. They log and count their own
 * failures, so the outage's warning and counter stay the writer's.
 */
import { Clock, Duration, Effect, Metric } from "effect"
import * as Metrics from "../services/Metrics.ts"

export type Tier = "redis" | "rabbitmq" | "postgres"

export interface TierHealth {
  readonly tier: Tier
  /** Whether the tier answered the last time it was used. */
  readonly isUp: () => boolean
  /** A token for an attempt about to begin, for `succeeded`. */
  readonly began: () => number
  /** The attempt begun at `began` succeeded. */
  readonly succeeded: (began: number) => Effect.Effect<void>
  /** Counts `count` failures (events that missed the tier, or attempts), logging only when the tier goes down. */
  readonly failed: (error: { readonly message: string }, count?: number) => Effect.Effect<void>
  /** What another loop found when it used the tier: reachable or not (no log, no failure counted). */
  readonly observed: (reachable: boolean) => Effect.Effect<void>
}

export interface TierHealthOptions {
  readonly tier: Tier
  /** Counted on every failure. */
  readonly failures: Metric.Counter<number>
  /** Logged as a warning when the tier goes down. */
  readonly downMessage: string
  /** Logged when it answers again. */
  readonly upMessage: string
  /** Run each time the tier comes back after an outage; must be quick (e.g. signal a fiber). */
  readonly onRecovered?: Effect.Effect<void>
}

/** A failure this soon after a recovery continues the same incident. */
const relapseWindow = Duration.seconds(30)

export const makeTierHealth = (options: TierHealthOptions): Effect.Effect<TierHealth> =>
  Effect.gen(function*() {
    // A plain variable: read synchronously on the hot path, written only here.
    let up = true
    /** What the other loops saw last (`observed`). */
    let reachable = true
    /** Counts the outages so far: an attempt's token is this count when it began. */
    let outages = 0
    let recoveredAt: number | undefined
    const gauge = Metrics.tierUp.pipe(Metric.withAttributes({ tier: options.tier }))
    yield* Metric.update(gauge, 1)
    const refreshGauge = Effect.suspend(() => Metric.update(gauge, up && reachable ? 1 : 0))

    const swap = (next: boolean) =>
      Effect.sync(() => {
        const was = up
        up = next
        return was
      })

    const succeeded = (began: number) =>
      Effect.suspend(() => (began < outages ? Effect.void : recovered))
    const recovered = swap(true).pipe(
      Effect.flatMap((wasUp) =>
        wasUp
          ? Effect.void
          : Effect.logInfo(options.upMessage).pipe(
            Effect.annotateLogs({ tier: options.tier }),
            Effect.andThen(Clock.currentTimeMillis),
            Effect.tap((now) => Effect.sync(() => (recoveredAt = now))),
            Effect.andThen(refreshGauge),
            Effect.andThen(options.onRecovered ?? Effect.void)
          )
      )
    )

    const failed = (error: { readonly message: string }, count = 1) =>
      Metric.update(options.failures, count).pipe(
        Effect.andThen(swap(false)),
        Effect.tap((wasUp) => Effect.sync(() => wasUp && outages++)),
        Effect.flatMap((wasUp) =>
          wasUp
            ? Effect.gen(function*() {
              const now = yield* Clock.currentTimeMillis
              const relapse = recoveredAt !== undefined && now - recoveredAt < Duration.toMillis(relapseWindow)
              yield* (relapse
                ? Effect.logInfo(`${options.tier} failing again soon after recovering; the same incident as the last warning`)
                : Effect.logWarning(options.downMessage)).pipe(
                  Effect.annotateLogs({ tier: options.tier, error: error.message })
                )
              yield* refreshGauge
            })
            : Effect.void
        )
      )

    const observed = (next: boolean) =>
      Effect.suspend(() => {
        if (next === reachable) return Effect.void
        reachable = next
        return refreshGauge
      })

    return { tier: options.tier, isUp: () => up, began: () => outages, succeeded, failed, observed }
  })
