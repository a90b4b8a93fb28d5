/**
 * `telegram-gateway logout`: ends the session on Telegram (auth.logOut) and
 * deletes the session file; `--account NAME` for an account of
 * `telegram.accounts`.
 */
import { Effect, Option } from "effect"
import { Command } from "effect/cli"
import { makeWith } from "../../layers/GramJsTelegramAccount.ts"
import { removeSession } from "../../layers/SessionFile.ts"
import { TelegramConfig } from "../../services/GatewayConfig.ts"
import { accountConfig } from "../Accounts.ts"
import { withRuntime } from "../Startup.ts"
import { accountFlag } from "./AccountFlag.ts"
import { configFile, root } from "./Root.ts"

export const signOut = (account: Option.Option<string> = Option.none()) =>
  Effect.gen(function*() {
    const config = yield* accountConfig(yield* TelegramConfig, account)
    yield* makeWith(config).signOut
    yield* removeSession(config.sessionFile)
    yield* Effect.logInfo(`logged out; ${config.sessionFile} deleted`)
  }).pipe(Effect.withSpan("Logout.signOut"))

export const logout = Command.make("logout", { account: accountFlag("End the session of this account of telegram.accounts") }, ({ account }) =>
  Effect.gen(function*() {
    const flags = yield* root
    return yield* signOut(account).pipe(withRuntime(configFile(flags)))
  })).pipe(Command.withDescription("End the session on Telegram and delete the session file"))
