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

interface Entry {
  confirmed: boolean | undefined
  at: number
  /** The event's message trace, so a relay publish joins it (src/programs/MessageTrace.ts). */
  trace: Tracer.AnySpan | undefined
}

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
  /** When the hot path took `key`, while it is pending. */
  readonly pendingSince: (key: string) => number | undefined
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
      if (entry?.confirmed === true) return
      entries.delete(key)
      entries.set(key, { confirmed: undefined, at, trace })
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
    pendingSince: (key) => {
      const entry = entries.get(key)
      return entry !== undefined && entry.confirmed === undefined ? entry.at : undefined
    },
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
