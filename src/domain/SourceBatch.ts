/**
 * What a source hands to ingestion: events that belong together, and what to
 * record once they are durable. A source's read progress (a chat's last
 * message id, its pts) must only move once the events it covers are
 * committed, or a crash between receipt and commit skips them for good.
 *
 * Ingestion runs `onCommitted` of each batch once every event of that batch
 * and of every batch accepted before it is committed to PostgreSQL (the
 * contiguous committed prefix), one batch at a time, in the order the batches
 * were accepted. A batch with no events (progress without data: an update
 * that moves pts but changes no stored message) completes as soon as the
 * batches before it do. Events that are never committed (the process died, or
 * shutdown timed out) never run their batch's `onCommitted`, so the source
 * reads them again after a restart; every tier dedupes on the stable key.
 */
import type { Effect } from "effect"
import type { MessageEvent } from "./Message.ts"

export interface SourceBatch {
  readonly events: ReadonlyArray<MessageEvent>
  /** Cheap and infallible: record progress in memory, persist it elsewhere (e.g. a flusher fiber). */
  readonly onCommitted: Effect.Effect<void>
}
