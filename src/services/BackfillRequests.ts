/**
 * Backfill requests: history an operator asks for with `telegram-gateway
 * backfill`, served by the process that owns the account (only it may use the
 * account's session). The command submits a request and follows it; the
 * owner's Telegram source claims it, pages the history into ingestion and
 * records how far it is committed, so a restart or a take-over resumes it.
 * The implementation is src/layers/PgBackfillRequests.ts
 * (sql/0030_backfill_requests.up.sql).
 */
import { Context, type Effect, Schema } from "effect"
import { describeCause } from "../domain/DescribeCause.ts"

export type BackfillStatus = "pending" | "running" | "done" | "failed"

/** What is asked for: one configured chat of one account, and an optional range by date or by message id. */
export interface BackfillSpec {
  readonly account: string
  /** The telegram.channels entry, as configured. */
  readonly channel: string
  /** From this date on (messages sent at or after it). */
  readonly since: Date | null
  /** Up to this date (messages sent before it). */
  readonly until: Date | null
  /** From this message id on (inclusive). */
  readonly fromId: number | null
  /** Up to this message id (inclusive). */
  readonly untilId: number | null
}

export interface BackfillRequest extends BackfillSpec {
  readonly id: number
  readonly status: BackfillStatus
  /** Resolved by the owner when it starts: ids in (afterId, upToId]. */
  readonly afterId: number | null
  readonly upToId: number | null
  /** Every page up to this id is committed. */
  readonly cursorId: number | null
  /** Messages read from history and committed. */
  readonly messages: number
  readonly error: string | null
  readonly requestedAt: Date
  readonly startedAt: Date | null
  readonly finishedAt: Date | null
}

export class BackfillStoreError extends Schema.TaggedError<BackfillStoreError>()("BackfillStoreError", {
  operation: Schema.String,
  cause: Schema.Defect()
}) {
  override get message(): string {
    return `Backfill request ${this.operation} failed: ${describeCause(this.cause)}`
  }
}

export class BackfillRequests extends Context.Service<BackfillRequests, {
  /**
   * Queues a request; an unfinished one with the same account, chat and
   * range is followed instead of queueing it twice (`attached`).
   */
  readonly submit: (spec: BackfillSpec) => Effect.Effect<{ readonly request: BackfillRequest; readonly attached: boolean }, BackfillStoreError>
  readonly get: (id: number) => Effect.Effect<BackfillRequest | undefined, BackfillStoreError>
  /** Pending and running requests of the current account (the `LeaseFence`'s, else `default`), oldest first. */
  readonly unfinished: Effect.Effect<ReadonlyArray<BackfillRequest>, BackfillStoreError>
  /** Running, over ids in (afterId, upToId]. */
  readonly start: (id: number, range: { readonly afterId: number; readonly upToId: number }) => Effect.Effect<void, BackfillStoreError>
  /** Committed up to `cursorId`, `messages` in all (both only move forward). */
  readonly progress: (id: number, cursorId: number, messages: number) => Effect.Effect<void, BackfillStoreError>
  readonly finish: (id: number, messages: number) => Effect.Effect<void, BackfillStoreError>
  readonly fail: (id: number, error: string) => Effect.Effect<void, BackfillStoreError>
}>()("telegram-gateway/BackfillRequests") {}
