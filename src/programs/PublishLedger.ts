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
export type PublishStatus = "confirmed" | "pending" | "unknown"

interface Entry {
  confirmed: boolean | undefined
  at: number
}

export interface PublishLedger {
  /** The hot path is publishing `key` (a confirmed key stays confirmed). */
  readonly attempting: (key: string, at: number) => void
  /** The hot path's outcome for `key`; a failure never undoes an earlier confirm. */
  readonly settled: (key: string, confirmed: boolean, at: number) => void
  readonly status: (key: string) => PublishStatus
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
    attempting: (key, at) => {
      const entry = entries.get(key)
      if (entry?.confirmed === true) return
      entries.delete(key)
      entries.set(key, { confirmed: undefined, at })
    },
    settled: (key, confirmed, at) => {
      const entry = entries.get(key)
      if (entry === undefined) {
        if (confirmed) entries.set(key, { confirmed, at })
      } else if (entry.confirmed !== true) {
        entry.confirmed = confirmed
      }
    },
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
