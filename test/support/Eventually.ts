/** Waiting in tests for a condition instead of for a fixed time. */
import { type Duration, Effect } from "effect"

interface EventuallyOptions {
  readonly timeout?: Duration.Input
  readonly interval?: Duration.Input
}

/**
 * Runs `check` every `interval` until it gives a value (anything but
 * undefined) and returns it; past `timeout` the test dies, naming `what`.
 */
export const eventuallyEffect = <A, E, R>(what: string, check: Effect.Effect<A | undefined, E, R>, options: EventuallyOptions = {}) =>
  Effect.gen(function*() {
    while (true) {
      const value = yield* check
      if (value !== undefined) return value
      yield* Effect.sleep(options.interval ?? "25 millis")
    }
  }).pipe(
    Effect.timeoutOrElse({
      duration: options.timeout ?? "15 seconds",
      orElse: () => Effect.die(new Error(`timed out waiting for ${what}`))
    })
  )

/** `eventuallyEffect` for a synchronous check. */
export const eventuallyValue = <A>(what: string, check: () => A | undefined, options: EventuallyOptions = {}) =>
  eventuallyEffect(what, Effect.sync(check), options)

/** Polls until `condition` holds, failing the test after `timeout`. */
export const eventually = (what: string, condition: () => boolean, timeout: Duration.Input = "15 seconds") =>
  Effect.asVoid(eventuallyValue(what, () => condition() || undefined, { timeout }))
