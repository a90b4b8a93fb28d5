/** `telegram-gateway rollback --to N`: undo the migrations above version N, newest first. */
import { Console, Effect } from "effect"
import { Command, Flag } from "effect/cli"
import { Migrations } from "../../services/Migrations.ts"

export const rollback = Command.make(
  "rollback",
  {
    to: Flag.Int("to").pipe(Flag.withDescription("Keep the migrations up to this version; 0 rolls back everything"))
  },
  ({ to }) =>
    Effect.gen(function*() {
      const rolledBack = yield* (yield* Migrations).rollback({ to })
      yield* Console.log(
        rolledBack.length === 0
          ? `Nothing above version ${to} is applied`
          : `Rolled back ${rolledBack.map((migration) => migration.downFile ?? migration.upFile).join(", ")}`
      )
    })
).pipe(
  Command.withDescription(
    "Roll back every applied migration above --to N with its down file, newest first, one transaction each, under the migration lock"
  )
)
