/**
 * `telegram-gateway backfill --channel C [--since DATE | --from-id N]
 * [--until DATE | --until-id N]`: asks the running gateway that owns the
 * chat's account to page its history into the tiers, and follows it
 * (src/programs/Backfill.ts).
 */
import { Duration, Effect, Option } from "effect"
import { Command, Flag } from "effect/cli"
import { backfill as runBackfill, BackfillUsage } from "../Backfill.ts"

export const backfill = Command.make("backfill", {
  channel: Flag.String("channel").pipe(
    Flag.withDescription("The chat, as in telegram.channels or as its id or @username (it must be one the gateway listens to)")
  ),
  account: Flag.String("account").pipe(
    Flag.withDescription("The account of telegram.accounts whose owner reads it (needed only when several accounts listen to the chat)"),
    Flag.optional
  ),
  since: Flag.String("since").pipe(
    Flag.withDescription("From messages sent at or after this date (2026-11-01 or 2026-11-01T12:00:00Z); default: the first message"),
    Flag.optional
  ),
  fromId: Flag.Int("from-id").pipe(Flag.withDescription("From this message id on (instead of --since)"), Flag.optional),
  until: Flag.String("until").pipe(
    Flag.withDescription("Up to messages sent before this date; default: the newest message when the gateway starts the request"),
    Flag.optional
  ),
  untilId: Flag.Int("until-id").pipe(Flag.withDescription("Up to this message id, inclusive (instead of --until)"), Flag.optional),
  timeout: Flag.String("timeout").pipe(
    Flag.withDescription("Stop following after this long (e.g. '30 minutes'); the request goes on in the gateway. Default: 6 hours"),
    Flag.withDefault("6 hours")
  )
}, (options) =>
  Effect.gen(function*() {
    const timeout = Duration.fromInput(options.timeout as Duration.Input)
    if (Option.isNone(timeout)) return yield* new BackfillUsage({ detail: `--timeout ${options.timeout} is not a duration (e.g. '30 minutes')` })
    const terminal = process.stdout.isTTY === true
    yield* runBackfill({
      ...options,
      timeout: timeout.value,
      terminal,
      print: (text) => Effect.sync(() => void process.stdout.write(terminal && text.startsWith("\r") ? text : `${text}\n`))
    })
  })).pipe(
    Command.withDescription(
      "Read a chat's history into the tiers through the running gateway that owns its account (it never opens the session itself): idempotent, resumable after a kill of either side, paced by flood waits; prints progress until done"
    )
  )
