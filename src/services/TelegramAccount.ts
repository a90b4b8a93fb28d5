/**
 * The Telegram accounts themselves, for the CLI: sign one in, sign it out,
 * list the chats it sees. Each call names the account by its configuration
 * (src/programs/Accounts.ts, `accountConfig`). The MTProto client behind it
 * (GramJS in src/layers/GramJsTelegramAccount.ts) never shows through, so no
 * program imports `telegram`.
 */
import { Context, type Effect, type Redacted, Schema } from "effect"
import type { ChatIdentity } from "./ChannelRegistry.ts"
import type { TelegramConfig } from "./GatewayConfig.ts"
import type { SessionFileError, TelegramCallError, TelegramFatal, TelegramFloodWait } from "./TelegramSource.ts"

export class LoginFailed extends Schema.TaggedError<LoginFailed>()("LoginFailed", { reason: Schema.String }) {
  override get message(): string {
    return `Login failed: ${this.reason}`
  }
}

/** Each answer is asked for only when Telegram needs it (a password only for two-step accounts). */
export interface LoginQuestions {
  readonly phone: Effect.Effect<string>
  readonly code: Effect.Effect<string>
  readonly password: Effect.Effect<Redacted.Redacted<string>>
}

export type AccountCallError = TelegramCallError | TelegramFloodWait | TelegramFatal

export class TelegramAccount extends Context.Service<TelegramAccount, {
  /**
   * Signs in and returns the authorized session (to be saved, never logged)
   * and who signed in. `seed` is a session to start from instead of a key
   * exchange (the simulator's pre-shared key, in tests).
   */
  readonly signIn: (
    config: TelegramConfig,
    questions: LoginQuestions,
    seed?: Redacted.Redacted<string>
  ) => Effect.Effect<{ readonly session: Redacted.Redacted<string>; readonly user: string }, LoginFailed | AccountCallError>
  /** Ends the session of the account's session file on Telegram; one Telegram already ended counts as done. */
  readonly signOut: (config: TelegramConfig) => Effect.Effect<void, AccountCallError | SessionFileError>
  /** The channels and groups the account sees. */
  readonly listChats: (config: TelegramConfig) => Effect.Effect<ReadonlyArray<ChatIdentity>, AccountCallError | SessionFileError>
}>()("telegram-gateway/TelegramAccount") {}
