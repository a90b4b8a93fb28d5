/**
 * The TelegramAccount on GramJS: one short-lived client per operation, with
 * the deadlines and error mapping of src/layers/GramJsClient.ts.
 */
import { Effect, Layer, Redacted } from "effect"
import { Api } from "telegram"
import { computeCheck } from "telegram/Password.js"
import type { TelegramConfig } from "../services/GatewayConfig.ts"
import { LoginFailed, type LoginQuestions, TelegramAccount } from "../services/TelegramAccount.ts"
import { clientSettings, makeGramJs, toCallError } from "./GramJsClient.ts"
import { identityOf, listDialogs } from "./GramJsResolve.ts"
import { readSession } from "./SessionFile.ts"

const userLabel = (user: Api.TypeUser) =>
  user instanceof Api.User ? `${user.username != null ? `@${user.username}` : user.firstName ?? "user"} (id ${user.id.toString()})` : "user"

/** For one account's configuration (src/programs/Accounts.ts, `accountConfig`). */
const makeWith = (config: TelegramConfig) => {

  const signIn = Effect.fn("TelegramAccount.signIn")(function*(questions: LoginQuestions, seed?: Redacted.Redacted<string>) {
    if (config.apiId === 0 || Redacted.value(config.apiHash) === "") {
      return yield* new LoginFailed({
        reason: "telegram.apiId and telegram.apiHash are not set (TELEGRAM_API_ID, TELEGRAM_API_HASH): create them at https://my.telegram.org"
      })
    }
    const gram = yield* makeGramJs(clientSettings(config, undefined), seed)
    yield* gram.connect
    const phoneNumber = yield* questions.phone
    const sent = yield* gram.invoke(
      new Api.auth.SendCode({
        phoneNumber,
        apiId: config.apiId,
        apiHash: Redacted.value(config.apiHash),
        settings: new Api.CodeSettings({})
      })
    )
    let authorization: Api.auth.TypeAuthorization
    if (sent instanceof Api.auth.SentCodeSuccess) {
      authorization = sent.authorization
    } else {
      const phoneCode = yield* questions.code
      authorization = yield* gram.invoke(new Api.auth.SignIn({ phoneNumber, phoneCodeHash: sent.phoneCodeHash, phoneCode })).pipe(
        Effect.catchTag("TelegramCallError", (error) =>
          error.detail.endsWith("SESSION_PASSWORD_NEEDED")
            ? Effect.gen(function*() {
              const password = yield* questions.password
              const parameters = yield* gram.invoke(new Api.account.GetPassword())
              const check = yield* Effect.tryPromise({
                try: () => computeCheck(parameters, Redacted.value(password)),
                catch: (cause) => toCallError("account.GetPassword", cause)
              })
              return yield* gram.invoke(new Api.auth.CheckPassword({ password: check }))
            })
            : Effect.fail(error))
      )
    }
    if (!(authorization instanceof Api.auth.Authorization)) {
      return yield* new LoginFailed({ reason: `no Telegram account uses ${phoneNumber}: sign up in a Telegram app first` })
    }
    return { session: yield* gram.exportSession, user: userLabel(authorization.user) }
  }, Effect.scoped)

  const signOut = Effect.gen(function*() {
    const stored = yield* readSession(config.sessionFile)
    const gram = yield* makeGramJs(clientSettings(config, stored), stored.session)
    // A session Telegram already dropped is as good as logged out.
    yield* gram.connect.pipe(
      Effect.andThen(gram.invoke(new Api.auth.LogOut())),
      Effect.catchTag("TelegramFatal", (fatal) => Effect.logWarning(`Telegram had already ended the session (${fatal.reason})`))
    )
  }).pipe(Effect.scoped, Effect.withSpan("TelegramAccount.signOut"))

  const listChats = Effect.gen(function*() {
    const stored = yield* readSession(config.sessionFile)
    const gram = yield* makeGramJs(clientSettings(config, stored), stored.session)
    yield* gram.connect
    const chats = yield* listDialogs(gram)
    return chats.map(identityOf)
  }).pipe(Effect.scoped, Effect.withSpan("TelegramAccount.listChats"))

  return { signIn, signOut, listChats }
}

export const layer = Layer.succeed(TelegramAccount, TelegramAccount.of({
  signIn: (config, questions, seed) => makeWith(config).signIn(questions, seed),
  signOut: (config) => makeWith(config).signOut,
  listChats: (config) => makeWith(config).listChats
}))

