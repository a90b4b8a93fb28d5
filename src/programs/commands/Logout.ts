/** `telegram-gateway logout`: ends the session on Telegram (auth.logOut) and deletes the session file. */
import { Effect } from "effect"
import { Command } from "effect/cli"
import * as GramJsTelegramAccount from "../../layers/GramJsTelegramAccount.ts"
import { removeSession } from "../../layers/SessionFile.ts"
import { TelegramConfig } from "../../services/GatewayConfig.ts"
import { TelegramAccount } from "../../services/TelegramAccount.ts"
import { withRuntime } from "../Startup.ts"
import { configFile, root } from "./Root.ts"

export const signOut = () =>
  Effect.gen(function*() {
    const config = yield* TelegramConfig
    yield* (yield* TelegramAccount).signOut
    yield* removeSession(config.sessionFile)
    yield* Effect.logInfo(`logged out; ${config.sessionFile} deleted`)
  }).pipe(Effect.withSpan("Logout.signOut"), Effect.provide(GramJsTelegramAccount.layer))

export const logout = Command.make("logout", {}, () =>
  Effect.gen(function*() {
    const flags = yield* root
    return yield* signOut().pipe(withRuntime(configFile(flags)))
  })).pipe(Command.withDescription("End the session on Telegram and delete the session file"))
