/**
 * `telegram-gateway db import`: copies messages from a legacy single-table
 * database. The copier on PostgreSQL is src/layers/LegacyImport.ts.
 */
import { Context, type Effect, type Redacted, Schema } from "effect"
import { isSqlError } from "effect/sql/SqlError"
import { describeCause } from "../domain/DescribeCause.ts"

export class LegacyImportFailed extends Schema.TaggedError<LegacyImportFailed>()("LegacyImportFailed", {
  /** What was being done, e.g. "read a batch from the source". */
  operation: Schema.String,
  cause: Schema.Defect()
}) {
  override get message(): string {
    const cause = this.cause
    const server: unknown = isSqlError(cause) ? cause.reason.cause : undefined
    const detail = server instanceof Error ? server.message : describeCause(cause)
    return `Legacy import could not ${this.operation}: ${detail}`
  }
}

export interface ImportProgress {
  /** Legacy rows walked so far, over every run of this source. */
  readonly copied: number
  /** Rows in the legacy table when this run started. */
  readonly total: number
  /** Rows this run inserted (rows already present are walked, not inserted). */
  readonly inserted: number
}

export interface ImportOptions {
  readonly from: Redacted.Redacted<string>
  readonly batchSize: number
  /** Called after every committed batch, and once before the first. */
  readonly onProgress?: (progress: ImportProgress) => Effect.Effect<void>
}

export class LegacyImport extends Context.Service<LegacyImport, {
  /**
   * Runs the import to the end of the legacy table, resuming from this
   * source's checkpoint; returns what this run walked and inserted.
   */
  readonly importMessages: (options: ImportOptions) => Effect.Effect<ImportProgress, LegacyImportFailed>
}>()("telegram-gateway/LegacyImport") {}
