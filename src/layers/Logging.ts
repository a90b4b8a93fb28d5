/**
 * Logs as one JSON object per line on stdout, or pretty for a terminal.
 *
 * Under systemd (stdout is the journal stream named by `JOURNAL_STREAM`),
 * each JSON line starts with its syslog priority, `<4>{"level":"WARN",...}`:
 * journald strips the prefix (the unit's default `SyslogLevelPrefix=yes`)
 * and files the line with that `PRIORITY`, so `journalctl -p warning` shows
 * exactly the warnings and errors; the stored message is the bare JSON.
 * Anywhere else (a pipe, a file, a container runtime) the line is bare JSON.
 * docs/operations.md ("Logs") says why this and not the native protocol.
 *
 * `reportFailure` logs a program's failure with that same logger, as one
 * line, so the fatal error at exit is JSON too (not the runtime's default
 * multi-line report).
 */
import { Cause, Effect, Exit, Layer, Logger, type LogLevel, References, Runtime } from "effect"
import * as Fs from "node:fs"
import { LogConfig } from "../services/GatewayConfig.ts"

/** RFC 5424 severities, as journald's `PRIORITY` field. */
export const syslogPriority = (level: LogLevel.LogLevel): number => {
  switch (level) {
    case "Fatal":
      return 2 // crit
    case "Error":
      return 3 // err
    case "Warn":
      return 4 // warning
    case "Info":
      return 6 // info
    default:
      return 7 // debug
  }
}

/**
 * True when stdout is the stream systemd connected to journald: systemd sets
 * `JOURNAL_STREAM` to that stream's `device:inode`, which a redirected stdout
 * (`> file`, `| jq`) no longer matches.
 */
export const stdoutIsJournal = (environment: NodeJS.ProcessEnv = process.env): boolean => {
  const stream = environment["JOURNAL_STREAM"]
  if (stream === undefined) return false
  try {
    const stat = Fs.fstatSync(1, { bigint: true })
    return stream === `${stat.dev}:${stat.ino}`
  } catch {
    return false
  }
}

/** JSON with the `<N>` priority prefix that journald's `SyslogLevelPrefix=` reads. */
export const journalJson = Logger.withConsoleLog(
  Logger.make((options) => `<${syslogPriority(options.logLevel)}>${Logger.formatJson.log(options)}`)
)

const jsonLogger = () => (stdoutIsJournal() ? journalJson : Logger.consoleJson)

/**
 * The configured logger and minimum level. An unreadable `log.*` setting
 * falls back to JSON at `Info`: the configuration check that follows reports
 * the bad key through this logger, as JSON, before the process exits 78.
 */
export const layer = Layer.unwrap(
  Effect.gen(function*() {
    const config = yield* Effect.gen(function*() {
      return yield* LogConfig
    }).pipe(Effect.orElseSucceed((): LogConfig => ({ format: "json", level: "Info" })))
    const logger = config.format === "json" ? jsonLogger() : Logger.consolePretty()
    return Layer.mergeAll(
      Logger.layer([logger]),
      Layer.succeed(References.MinimumLogLevel, config.level)
    )
  })
)

/**
 * A failure the program already logged: keeps its exit code, and tells the
 * runtime (`NodeRuntime.runMain`) not to log it a second time.
 */
class ReportedFailure extends Error {
  override readonly [Runtime.errorExitCode]: number
  override readonly [Runtime.errorReported] = false
  constructor(exitCode: number) {
    super("reported")
    this[Runtime.errorExitCode] = exitCode
  }
}

/**
 * Logs a failure (not an interruption) at `Error` through the loggers in
 * place, as one entry, and fails with the same exit code, marked reported.
 * Provide `layer` outside it.
 */
export const reportFailure = <A, E, R>(program: Effect.Effect<A, E, R>): Effect.Effect<A, ReportedFailure, R> =>
  program.pipe(
    Effect.catchCause((cause) =>
      Cause.hasInterruptsOnly(cause)
        ? Effect.failCause(cause as Cause.Cause<never>)
        : Effect.suspend(() => {
          const error = Cause.squash(cause)
          const exitCode = Runtime.getErrorExitCode(error)
          return Effect.logError(error instanceof Error ? error.message : String(error), cause).pipe(
            Effect.annotateLogs({ exitCode }),
            Effect.andThen(Effect.fail(new ReportedFailure(exitCode)))
          )
        })
    )
  )

/**
 * `reportFailure` as a layer, for a CLI whose commands get their services
 * from one provision: when what the layer was provided to ends in a failure
 * (not an interruption), logs it once at `Error` with its exit code, through
 * the loggers in place. The failure itself goes on unchanged (its exit code
 * with it), so run it with `disableErrorReporting`. Provide `layer` to it.
 */
export const failureReport = Layer.effectDiscard(
  Effect.addFinalizer((exit) =>
    Exit.isSuccess(exit) || Cause.hasInterruptsOnly(exit.cause)
      ? Effect.void
      : Effect.suspend(() => {
        const error = Cause.squash(exit.cause)
        return Effect.logError(error instanceof Error ? error.message : String(error), exit.cause).pipe(
          Effect.annotateLogs({ exitCode: Runtime.getErrorExitCode(error) })
        )
      })
  )
)
