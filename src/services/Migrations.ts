/**
 * The schema's migrations and storage policies, for `migrate`, `rollback`
 * and the demo. The runner on PostgreSQL (src/layers/Migrations.ts) connects
 * with `database.migrationUrl` for each call.
 */
import { Context, type Effect, Schema } from "effect"
import { isSqlError } from "effect/sql/SqlError"
import { describeCause } from "../domain/DescribeCause.ts"

/** A SqlError's own message is generic ("Query failed"): add what PostgreSQL said. */
const describeFailure = (cause: unknown): string => {
  if (!isSqlError(cause)) return describeCause(cause)
  const server: unknown = cause.reason.cause
  return server instanceof Error && server.message !== cause.message ? `${cause.message}: ${server.message}` : cause.message
}

export class MigrationFailed extends Schema.TaggedError<MigrationFailed>()("MigrationFailed", {
  /** What was being done, naming the file when there is one. */
  operation: Schema.String,
  cause: Schema.Defect()
}) {
  override get message(): string {
    return `Migration step "${this.operation}" failed: ${describeFailure(this.cause)}`
  }
}

export class MigrationChecksumMismatch extends Schema.TaggedError<MigrationChecksumMismatch>()(
  "MigrationChecksumMismatch",
  {
    file: Schema.String,
    recorded: Schema.String,
    current: Schema.String
  }
) {
  override get message(): string {
    return `${this.file} changed after it was applied (checksum ${this.recorded.slice(0, 12)} recorded, ` +
      `${this.current.slice(0, 12)} now): restore the file and put the change in a new migration`
  }
}

export type MigrationError = MigrationFailed | MigrationChecksumMismatch

export interface Migration {
  readonly version: number
  readonly name: string
  /** e.g. `0001_messages.up.sql` */
  readonly upFile: string
  readonly downFile: string | undefined
  readonly checksum: string
}

export interface MigrationStatus {
  readonly version: number
  readonly name: string
  readonly file: string
  /** `changed`: applied, but the up file's checksum differs from the recorded one. */
  readonly state: "applied" | "pending" | "changed"
  readonly appliedAt: Date | null
}

export class Migrations extends Context.Service<Migrations, {
  /** Applies every pending migration in order; returns those it applied (none when up to date). */
  readonly migrate: Effect.Effect<ReadonlyArray<Migration>, MigrationError>
  /** Applies the pending migrations up to version `to` (every one when absent). */
  readonly migrateTo: (options: { readonly to?: number | undefined }) => Effect.Effect<ReadonlyArray<Migration>, MigrationError>
  /** Every migration in sql/ with whether it is applied, pending, or changed since. */
  readonly status: Effect.Effect<ReadonlyArray<MigrationStatus>, MigrationError>
  /** Rolls back, newest first, every applied migration above version `to` (0 = all). */
  readonly rollback: (options: { readonly to: number }) => Effect.Effect<ReadonlyArray<Migration>, MigrationError>
  /** Applies the configured storage policies; one line per policy applied. */
  readonly applyStoragePolicies: Effect.Effect<ReadonlyArray<string>, MigrationError>
}>()("telegram-gateway/Migrations") {}
