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

/** A small seeded PRNG (mulberry32), so a run that drops pushes can be replayed. */
const seeded = (seed: number) => {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296
  }
}

/** How pushed update batches are mangled on their way to clients, as Telegram does (TELEGRAM.md). */
export interface PushFaults {
  /** Probability that a batch is never pushed (1 stops pushes entirely). */
  readonly dropRatio?: number
  /** Probability that a batch is pushed twice. */
  readonly duplicateRatio?: number
  /** Batches are held in groups of this many (or 20 ms) and pushed shuffled. */
  readonly reorderWindow?: number
  /** Seed of the random choices; the same seed gives the same choices. */
  readonly seed?: number
}

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
  private push: Required<PushFaults> = { dropRatio: 0, duplicateRatio: 0, reorderWindow: 0, seed: 1 }
  private random = seeded(1)
  private held: Array<() => void> = []
  private heldTimer: NodeJS.Timeout | undefined
  /** Update batches that were not pushed because of `pushFaults` or `skipUpdates`. */
  pushesDropped = 0

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

  /** Drops, duplicates and reorders pushed update batches from now on; pts still advances, so clients see gaps. */
  pushFaults(faults: PushFaults): void {
    this.releaseHeld()
    this.push = {
      dropRatio: faults.dropRatio ?? 0,
      duplicateRatio: faults.duplicateRatio ?? 0,
      reorderWindow: faults.reorderWindow ?? 0,
      seed: faults.seed ?? 1
    }
    this.random = seeded(this.push.seed)
  }

  /** Removes every fault. */
  clear(): void {
    this.delays.clear()
    this.hung.clear()
    this.floods.clear()
    this.fatalError = undefined
    this.updatesToSkip = 0
    this.pushFaults({})
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

  /** @internal Delivers one pushed update batch (`deliver`), or not, or twice, or later, as the faults say. */
  routePush(deliver: () => void): void {
    if (this.updatesToSkip > 0) {
      this.updatesToSkip -= 1
      this.pushesDropped += 1
      return
    }
    if (this.push.dropRatio > 0 && this.random() < this.push.dropRatio) {
      this.pushesDropped += 1
      return
    }
    const copies = this.push.duplicateRatio > 0 && this.random() < this.push.duplicateRatio ? 2 : 1
    if (this.push.reorderWindow <= 1) {
      for (let i = 0; i < copies; i++) deliver()
      return
    }
    for (let i = 0; i < copies; i++) this.held.push(deliver)
    if (this.held.length >= this.push.reorderWindow) this.releaseHeld()
    else this.heldTimer ??= setTimeout(() => this.releaseHeld(), 20)
  }

  private releaseHeld(): void {
    if (this.heldTimer !== undefined) clearTimeout(this.heldTimer)
    this.heldTimer = undefined
    const held = this.held
    this.held = []
    // Fisher-Yates with the seeded generator.
    for (let i = held.length - 1; i > 0; i--) {
      const j = Math.floor(this.random() * (i + 1))
      ;[held[i], held[j]] = [held[j]!, held[i]!]
    }
    for (const deliver of held) deliver()
  }
}
