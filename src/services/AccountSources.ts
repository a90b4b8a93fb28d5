/**
 * One account's Telegram source, opened by the process that owns the account
 * (src/programs/AccountOwner.ts) for as long as it owns it. The source reads
 * the lease's fence (`LeaseFence`, `OwnerEpoch`, `KeyGuard`) from where it is
 * opened; its stores are made for this opening alone (a bad `database.*`
 * or a refused connection fails the opening).
 */
import { type Config, Context, type Effect, type Scope } from "effect"
import type { SqlError } from "effect/sql/SqlError"
import type { InvalidChatReference } from "./ChatReference.ts"
import type { TelegramConfig } from "./GatewayConfig.ts"
import type { SessionFileError, TelegramSource } from "./TelegramSource.ts"

export class AccountSources extends Context.Service<AccountSources, {
  /** Scoped: connects the account of `config` and serves its chats until the scope closes. */
  readonly open: (
    config: TelegramConfig
  ) => Effect.Effect<TelegramSource["Service"], SessionFileError | InvalidChatReference | Config.ConfigError | SqlError, Scope.Scope>
}>()("telegram-gateway/AccountSources") {}
