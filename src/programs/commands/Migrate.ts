/**
 * `telegram-gateway migrate [--to N]` and `telegram-gateway migrate status`.
 *
 * Migrating to the newest version also applies the configured storage
 * policies (chunk interval, compression, retention): they depend on the
 * configuration, which static migration files cannot read.
 */
import { Console, Effect, Option } from "effect"
import { Command, Flag } from "effect/cli"
import { Migrations } from "../../services/Migrations.ts"

const pad = (value: string, width: number) => value.padEnd(width)

export const migrateStatus = Command.make("status", {}, () =>
  Effect.gen(function*() {
    const entries = yield* (yield* Migrations).status
    yield* Console.log(`${pad("version", 8)} ${pad("state", 8)} ${pad("applied at", 25)} file`)
    for (const entry of entries) {
      yield* Console.log(
        `${pad(String(entry.version).padStart(4, "0"), 8)} ${pad(entry.state, 8)} ` +
          `${pad(entry.appliedAt?.toISOString() ?? "-", 25)} ${entry.file}`
      )
    }
  })).pipe(Command.withDescription("List every migration in sql/ as applied, pending, or changed since it was applied"))

export const migrate = Command.make(
  "migrate",
  {
    to: Flag.Int("to").pipe(
      Flag.withDescription("Stop at this version instead of the newest (storage policies are then not applied)"),
      Flag.optional
    )
  },
  ({ to }) =>
    Effect.gen(function*() {
      const migrations = yield* Migrations
      const target = Option.getOrUndefined(to)
      const applied = yield* migrations.migrateTo({ to: target })
      yield* Console.log(
        applied.length === 0 ? "Already up to date" : `Applied ${applied.map((migration) => migration.upFile).join(", ")}`
      )
      if (target !== undefined) return
      for (const policy of yield* migrations.applyStoragePolicies) yield* Console.log(`Storage policy: ${policy}`)
    })
).pipe(
  Command.withDescription(
    "Apply the pending migrations in sql/ (all of them, or up to --to N) with database.migrationUrl, one transaction each, under a lock so two hosts cannot run them at once; then apply the storage policies from the configuration"
  ),
  Command.withSubcommands([migrateStatus])
)
