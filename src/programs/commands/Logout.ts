/** `telegram-gateway logout`: ends the session on Telegram (auth.logOut) and deletes the session file. */
import { Effect } from "effect"
import { Command } from "effect/cli"
import { Api } from "telegram"
import { clientSettings, makeGramJs } from "../../layers/GramJsClient.ts"
import { readSession, removeSession } from "../../layers/SessionFile.ts"
import { TelegramConfig } from "../../services/GatewayConfig.ts"
import { withRuntime } from "../Startup.ts"
import { configFile, root } from "./Root.ts"

export const signOut = Effect.fn("Logout.signOut")(function*() {
  const config = yield* TelegramConfig
  const stored = yield* readSession(config.sessionFile)
  const gram = yield* makeGramJs(clientSettings(config, stored), stored.session)
  // A session Telegram already dropped is as good as logged out: the file goes either way.
  yield* gram.connect.pipe(
    Effect.andThen(gram.invoke(new Api.auth.LogOut())),
    Effect.catchTag("TelegramFatal", (fatal) => Effect.logWarning(`Telegram had already ended the session (${fatal.reason})`))
  )
  yield* removeSession(config.sessionFile)
  yield* Effect.logInfo(`logged out; ${config.sessionFile} deleted`)
}, Effect.scoped)

export const logout = Command.make("logout", {}, () =>
  Effect.gen(function*() {
    const flags = yield* root
    return yield* signOut().pipe(withRuntime(configFile(flags)))
  })).pipe(Command.withDescription("End the session on Telegram and delete the session file"))
