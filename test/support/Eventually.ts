/** Waiting in tests for a condition instead of for a fixed time. */
import { type Duration, Effect } from "effect"

/**
 * Polls `check` every `interval` until it gives a value (anything but
 * undefined) and returns it; past `timeout` the test dies, naming `what`.
 */
export const eventuallyValue = <A>(
  what: string,
  check: () => A | undefined,
  options: { readonly timeout?: Duration.Input; readonly interval?: Duration.Input } = {}
) =>
  Effect.gen(function*() {
    while (true) {
      const value = check()
      if (value !== undefined) return value
      yield* Effect.sleep(options.interval ?? "25 millis")
    }
  }).pipe(
    Effect.timeoutOrElse({
      duration: options.timeout ?? "15 seconds",
      orElse: () => Effect.die(new Error(`timed out waiting for ${what}`))
    })
  )

/** Polls until `condition` holds, failing the test after `timeout`. */
export const eventually = (what: string, condition: () => boolean, timeout: Duration.Input = "15 seconds") =>
  Effect.asVoid(eventuallyValue(what, () => condition() || undefined, { timeout }))
