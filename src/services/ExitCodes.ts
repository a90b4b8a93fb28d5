/**
 * Process exit codes, documented in the README. The systemd unit lists the
 * ones that restarting cannot fix in `RestartPreventExitStatus=`. The Telegram
 * codes are defined next to their errors (src/services/TelegramSource.ts).
 */
import { fatalExitCodes, sessionFileExitCodes } from "./TelegramSource.ts"

export const ExitCode = {
  ok: 0,
  failure: 1,
  /** The session file is corrupt (sysexits EX_DATAERR): run `telegram-gateway login`. */
  sessionCorrupt: sessionFileExitCodes.corrupt,
  /** The session file does not exist (sysexits EX_NOINPUT): run `telegram-gateway login`. */
  sessionMissing: sessionFileExitCodes.missing,
  /** The session file cannot be written (sysexits EX_CANTCREAT). */
  sessionUnwritable: sessionFileExitCodes.unwritable,
  /** The session file cannot be read (sysexits EX_NOPERM). */
  sessionUnreadable: sessionFileExitCodes.unreadable,
  /**
   * Stopped with accepted events still uncommitted after `ingest.shutdownTimeout`
   * (sysexits EX_TEMPFAIL): nothing is lost, they are read again from Telegram at
   * the next start, but the stop was not clean.
   */
  uncommittedAtShutdown: 75,
  /** `backfill` was given a bad range or a chat no account listens to (sysexits EX_USAGE). */
  backfillUsage: 64,
  /** `backfill`: no gateway process owns the account now, so nobody can serve it (sysexits EX_UNAVAILABLE). */
  backfillNoOwner: 69,
  /** `backfill` was not done within --timeout (sysexits EX_TEMPFAIL); the request goes on in the gateway. */
  backfillTimedOut: 75,
  /** A configuration key is missing or invalid (sysexits EX_CONFIG). */
  config: 78,
  /** Telegram no longer knows the session's key (AUTH_KEY_UNREGISTERED): log in again. */
  authKeyUnregistered: fatalExitCodes.AUTH_KEY_UNREGISTERED,
  /** The session was terminated from another device (SESSION_REVOKED): log in again. */
  sessionRevoked: fatalExitCodes.SESSION_REVOKED,
  /** The account is deleted or banned (USER_DEACTIVATED): restarting cannot fix it. */
  userDeactivated: fatalExitCodes.USER_DEACTIVATED,
  /** The session is in use elsewhere (AUTH_KEY_DUPLICATED): stop the other instance, log in again. */
  authKeyDuplicated: fatalExitCodes.AUTH_KEY_DUPLICATED
} as const
