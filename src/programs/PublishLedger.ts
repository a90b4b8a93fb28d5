/**
 * What the hot path did with each event's publish, for the bus relay: an
 * event the hot path got confirmed need not be published again; one it is
 * still publishing is left to it for a while; anything else (failed, skipped,
 * never seen by this process) is the relay's to publish.
 *
 * Entries leave when the relay passes their event, or after `retention`
 * (an event whose row was a duplicate is never passed). Insertion-ordered, so
 * pruning looks only at the oldest entries.
 */
import type { Tracer } from "effect"

export type PublishStatus = "confirmed" | "pending" | "unknown"

/**
 * What the ledger holds for one key. The object stays the same while the
 * entry is kept (a new attempt updates it in place), so the relay keeps it
 * beside each event it waits on and reads later outcomes from it, without a
 * lookup per event per pass.
 */
export interface LedgerEntry {
  /** True once confirmed, false after a failed or skipped publish, undefined while the hot path publishes. */
  readonly confirmed: boolean | undefined
  /** When the hot path took the event, or settled it (epoch ms). */
  readonly at: number
  /** The event's message trace, so a relay publish joins it (src/programs/MessageTrace.ts). */
  readonly trace: Tracer.AnySpan | undefined
}

type Entry = { -readonly [K in keyof LedgerEntry]: LedgerEntry[K] }

export interface PublishLedger {
  /** The hot path is publishing `key` (a confirmed key stays confirmed). */
  readonly attempting: (key: string, at: number, trace?: Tracer.AnySpan) => void
  /**
   * The hot path's outcome for `key`; a failure never undoes an earlier
   * confirm. A failure is kept only with a trace, for the relay's publish.
   */
  readonly settled: (key: string, confirmed: boolean, at: number, trace?: Tracer.AnySpan) => void
  readonly status: (key: string) => PublishStatus
  /** The message trace of `key`, while its entry is kept. */
  readonly trace: (key: string) => Tracer.AnySpan | undefined
  /** The entry of `key`, while it is kept. */
  readonly entry: (key: string) => LedgerEntry | undefined
  readonly forget: (key: string) => void
  /** Drops entries older than `before` (epoch ms). */
  readonly prune: (before: number) => void
  readonly size: () => number
}

export const makePublishLedger = (): PublishLedger => {
  const entries = new Map<string, Entry>()
  return {
    attempting: (key, at, trace) => {
      const entry = entries.get(key)
      if (entry === undefined) return void entries.set(key, { confirmed: undefined, at, trace })
      if (entry.confirmed === true) return
      // Moved to the end, so insertion order stays the order of `at` for `prune`.
      entries.delete(key)
      entry.confirmed = undefined
      entry.at = at
      entry.trace = trace
      entries.set(key, entry)
    },
    settled: (key, confirmed, at, trace) => {
      const entry = entries.get(key)
      if (entry === undefined) {
        if (confirmed || trace !== undefined) entries.set(key, { confirmed, at, trace })
      } else if (entry.confirmed !== true) {
        entry.confirmed = confirmed
      }
    },
    trace: (key) => entries.get(key)?.trace,
    status: (key) => {
      const entry = entries.get(key)
      return entry === undefined || entry.confirmed === false
        ? "unknown"
        : entry.confirmed === true
        ? "confirmed"
        : "pending"
    },
    entry: (key) => entries.get(key),
    forget: (key) => void entries.delete(key),
    prune: (before) => {
      for (const [key, entry] of entries) {
        if (entry.at >= before) break
        entries.delete(key)
      }
    },
    size: () => entries.size
  }
}
