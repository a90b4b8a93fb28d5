import type { MessageEvent } from "../domain/Message.ts"
import type { DedupVerdict } from "../services/MessageCache.ts"

/** What happened to events, for live views, benchmarks and tests. */
export type IngestProgress =
  | {
    readonly _tag: "HotPathDone"
    readonly event: MessageEvent
    readonly verdict: DedupVerdict | "unknown"
    readonly cached: boolean
    readonly published: boolean
    readonly at: number
  }
  | { readonly _tag: "Committed"; readonly events: ReadonlyArray<MessageEvent>; readonly at: number }
