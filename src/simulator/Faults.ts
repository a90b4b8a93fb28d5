/**
 * Faults a test can inject into one simulator. Methods are named as GramJS
 * names its request classes: "messages.GetHistory", "contacts.ResolveUsername",
 * "users.GetUsers", "updates.GetChannelDifference", ...
 */

/** The errors after which Telegram will not serve the session again, with their codes. */
export const FATAL_ERRORS = {
  AUTH_KEY_UNREGISTERED: 401,
  SESSION_REVOKED: 401,
  USER_DEACTIVATED: 401,
  AUTH_KEY_DUPLICATED: 406
} as const
export type FatalError = keyof typeof FATAL_ERRORS

/** What the server does with one call. */
export type FaultDecision =
  | { readonly _tag: "Answer"; readonly delayMs: number }
  | { readonly _tag: "Hang" }
  | { readonly _tag: "Fail"; readonly code: number; readonly message: string }

export class Faults {
  private readonly delays = new Map<string, number>()
  private readonly hung = new Set<string>()
  private readonly floods = new Map<string, { readonly seconds: number; remaining: number }>()
  private fatalError: FatalError | undefined
  private updatesToSkip = 0

  private readonly closeAllConnections: () => void

  constructor(closeAllConnections: () => void) {
    this.closeAllConnections = closeAllConnections
  }

  /** Closes every open client connection now, as a network blip would. */
  dropConnections(): void {
    this.closeAllConnections()
  }

  /** Answers `method` only after `ms` milliseconds. */
  delay(method: string, ms: number): void {
    this.delays.set(method, ms)
  }

  /** Never answers `method` (until `clear()`). */
  hang(method: string): void {
    this.hung.add(method)
  }

  /** Answers the next `times` calls of `method` with 420 FLOOD_WAIT_<seconds>. */
  floodWait(method: string, seconds: number, times = 1): void {
    this.floods.set(method, { seconds, remaining: times })
  }

  /** Answers every call with a fatal authorization error (401, or 406 for AUTH_KEY_DUPLICATED). */
  fatal(error: FatalError): void {
    this.fatalError = error
  }

  /** Does not push the next `count` updates; pts still advances, so clients see a gap. */
  skipUpdates(count: number): void {
    this.updatesToSkip += count
  }

  /** Removes every fault. */
  clear(): void {
    this.delays.clear()
    this.hung.clear()
    this.floods.clear()
    this.fatalError = undefined
    this.updatesToSkip = 0
  }

  /** @internal Decides the fate of one call of `method`. */
  decide(method: string): FaultDecision {
    if (this.fatalError !== undefined) {
      return { _tag: "Fail", code: FATAL_ERRORS[this.fatalError], message: this.fatalError }
    }
    if (this.hung.has(method)) return { _tag: "Hang" }
    const flood = this.floods.get(method)
    if (flood !== undefined && flood.remaining > 0) {
      flood.remaining -= 1
      if (flood.remaining === 0) this.floods.delete(method)
      return { _tag: "Fail", code: 420, message: `FLOOD_WAIT_${flood.seconds}` }
    }
    return { _tag: "Answer", delayMs: this.delays.get(method) ?? 0 }
  }

  /** @internal True when the next update must be swallowed. */
  takeSkippedUpdate(): boolean {
    if (this.updatesToSkip === 0) return false
    this.updatesToSkip -= 1
    return true
  }
}
