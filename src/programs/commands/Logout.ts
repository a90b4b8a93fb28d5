/**
 * `telegram-gateway logout`: ends the session on Telegram (auth.logOut) and
 * deletes the session file; `--account NAME` for an account of
 * `telegram.accounts`.
 */
import { Effect, Option } from "effect"
import { Command } from "effect/cli"
import { TelegramConfig } from "../../services/GatewayConfig.ts"
import { SessionFiles } from "../../services/SessionFiles.ts"
import { TelegramAccount } from "../../services/TelegramAccount.ts"
import { accountConfig } from "../Accounts.ts"
import { accountFlag } from "./AccountFlag.ts"

export const signOut = (account: Option.Option<string> = Option.none()) =>
  Effect.gen(function*() {
    const config = yield* accountConfig(yield* TelegramConfig, account)
    yield* (yield* TelegramAccount).signOut(config)
    yield* (yield* SessionFiles).remove(config.sessionFile)
    yield* Effect.logInfo(`logged out; ${config.sessionFile} deleted`)
  }).pipe(Effect.withSpan("Logout.signOut"))

export const logout = Command.make("logout", { account: accountFlag("End the session of this account of telegram.accounts") }, ({ account }) =>
  signOut(account)).pipe(Command.withDescription("End the session on Telegram and delete the session file"))
