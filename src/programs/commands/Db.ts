/**
 * `telegram-gateway db import --from URL`: copy messages from a legacy
 * `telegram_messages` table (the LegacyImport service), with a progress bar
 * on stderr. Resumable and idempotent: run it again after an interruption.
 */
import { Clock, Console, Effect, Redacted } from "effect"
import { Command, Flag } from "effect/cli"
import { withoutPassword } from "../../domain/WithoutPassword.ts"
import { type ImportProgress, LegacyImport } from "../../services/LegacyImport.ts"

const barWidth = 30

/** One line, redrawn in place on a terminal; a line per tenth otherwise (logs stay short). */
const progressBar = (interactive: boolean, started: number) => {
  let lastTenth = -1
  return (progress: ImportProgress): Effect.Effect<void> =>
    Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.sync(() => {
      const fraction = progress.total === 0 ? 1 : Math.min(progress.copied / progress.total, 1)
      const filled = Math.round(fraction * barWidth)
      const seconds = (now - started) / 1000
      const rate = seconds > 0 ? Math.round(progress.inserted / seconds) : 0
      const line = `[${"#".repeat(filled)}${".".repeat(barWidth - filled)}] ${(fraction * 100).toFixed(1)}% ` +
        `${progress.copied}/${progress.total} rows, ${progress.inserted} new, ${rate} rows/s`
      if (interactive) {
        process.stderr.write(`\r${line}`)
        return
      }
      const tenth = Math.floor(fraction * 10)
      if (tenth !== lastTenth) {
        lastTenth = tenth
        process.stderr.write(`${line}\n`)
      }
    }))
}

export const dbImport = Command.make(
  "import",
  {
    from: Flag.String("from").pipe(
      Flag.withDescription("PostgreSQL URL of the database holding the legacy telegram_messages table")
    ),
    batchSize: Flag.Int("batch-size").pipe(Flag.withDescription("Rows per batch (one transaction each)"), Flag.withDefault(5000))
  },
  ({ batchSize, from }) =>
    Effect.gen(function*() {
      const source = Redacted.make(from)
      const interactive = process.stderr.isTTY === true
      const result = yield* (yield* LegacyImport).importMessages({
        from: source,
        batchSize: Math.max(1, batchSize),
        onProgress: progressBar(interactive, yield* Clock.currentTimeMillis)
      })
      if (interactive) process.stderr.write("\n")
      yield* Console.log(
        `Imported from ${withoutPassword(source)}: ${result.copied} of ${result.total} rows walked, ${result.inserted} new`
      )
    })
).pipe(
  Command.withDescription(
    "Copy messages from a legacy single-table database (telegram_messages: channel_id, message_id, date, text, payload) in keyset batches; resumes after an interruption, skips rows already copied"
  )
)

export const db = Command.make("db").pipe(
  Command.withDescription("Move data into the gateway's database"),
  Command.withSubcommands([dbImport])
)
