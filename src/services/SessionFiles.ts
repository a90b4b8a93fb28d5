/**
 * The account's session file: its full credential, so it only ever travels
 * `Redacted`. Read with checks (missing, too open, corrupt), written
 * atomically with mode 0600 in a 0700 directory, and locked while a process
 * uses the account. On disk in src/layers/SessionFile.ts (the format is
 * GramJS's StringSession) and src/layers/FlockSessionLock.ts.
 */
import { Context, type Effect, type Redacted, Schema, type Scope } from "effect"
import type { SessionFileError } from "./TelegramSource.ts"

/** Another process on this host holds the session file's lock. */
export class SessionFileLocked extends Schema.TaggedError<SessionFileLocked>()("SessionFileLocked", {
  path: Schema.String,
  detail: Schema.String
}) {
  override get message(): string {
    return `session file ${this.path} is in use by another process on this host (${this.detail}): it keeps the account until it stops`
  }
}

export class SessionFiles extends Context.Service<SessionFiles, {
  /**
   * Reads and checks the file (warning about loose permissions); returns the
   * fingerprint of its auth key (sql/0035_account_login_needed.up.sql), never
   * the key itself.
   */
  readonly keyId: (path: string) => Effect.Effect<string, SessionFileError>
  /** Replaces the file atomically with mode 0600. */
  readonly write: (path: string, session: Redacted.Redacted<string>) => Effect.Effect<void, SessionFileError>
  /** Deletes the file; false when there was none. */
  readonly remove: (path: string) => Effect.Effect<boolean, SessionFileError>
  /** Scoped: an exclusive lock on the file for this host, held until the scope closes; fails at once when held elsewhere. */
  readonly lock: (path: string) => Effect.Effect<void, SessionFileLocked, Scope.Scope>
}>()("telegram-gateway/SessionFiles") {}
