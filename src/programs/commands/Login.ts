/**
 * `telegram-gateway login`: signs the account in (phone number, login code,
 * two-step password) and writes the session file atomically, mode 0600 in a
 * 0700 directory. Each answer comes from a flag, else the environment
 * (TELEGRAM_PHONE, TELEGRAM_CODE, TELEGRAM_PASSWORD), else a prompt. The
 * session is never printed or logged.
 */
import { Config, Effect, Option, Redacted, Schema } from "effect"
import { Command, Flag } from "effect/cli"
import { Api } from "telegram"
import { computeCheck } from "telegram/Password.js"
import { clientSettings, makeGramJs, toCallError } from "../../layers/GramJsClient.ts"
import { writeSession } from "../../layers/SessionFile.ts"
import { TelegramConfig } from "../../services/GatewayConfig.ts"
import { withRuntime } from "../Startup.ts"
import { type Prompt, terminalPrompt } from "./Prompt.ts"
import { configFile, root } from "./Root.ts"

export class LoginFailed extends Schema.TaggedError<LoginFailed>()("LoginFailed", { reason: Schema.String }) {
  override get message(): string {
    return `Login failed: ${this.reason}`
  }
}

export interface LoginAnswers {
  readonly phone: Option.Option<string>
  readonly code: Option.Option<string>
  readonly password: Option.Option<Redacted.Redacted<string>>
}

const answer = <A>(given: Option.Option<A>, ask: Effect.Effect<A>) =>
  Option.match(given, { onNone: () => ask, onSome: Effect.succeed })

const userLabel = (user: Api.TypeUser) =>
  user instanceof Api.User ? `${user.username != null ? `@${user.username}` : user.firstName ?? "user"} (id ${user.id.toString()})` : "user"

/**
 * Signs in and saves the session. `seed` is a session to start from instead
 * of a new key exchange (the simulator's pre-shared key, in tests).
 */
export const signIn = Effect.fn("Login.signIn")(function*(
  answers: LoginAnswers,
  prompt: Prompt,
  seed?: Redacted.Redacted<string>
) {
  const config = yield* TelegramConfig
  if (config.apiId === 0 || Redacted.value(config.apiHash) === "") {
    return yield* new LoginFailed({
      reason: "telegram.apiId and telegram.apiHash are not set (TELEGRAM_API_ID, TELEGRAM_API_HASH): create them at https://my.telegram.org"
    })
  }
  const gram = yield* makeGramJs(clientSettings(config, undefined), seed)
  yield* gram.connect
  const phoneNumber = yield* answer(answers.phone, prompt.ask("Phone number (international format, e.g. +15550000001): "))
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
    const phoneCode = yield* answer(answers.code, prompt.ask("Login code (sent to your Telegram app): "))
    authorization = yield* gram.invoke(new Api.auth.SignIn({ phoneNumber, phoneCodeHash: sent.phoneCodeHash, phoneCode })).pipe(
      Effect.catchTag("TelegramCallError", (error) =>
        error.detail.endsWith("SESSION_PASSWORD_NEEDED")
          ? Effect.gen(function*() {
            const password = yield* answer(answers.password, prompt.askSecret("Two-step verification password: "))
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
  const session = yield* gram.exportSession
  yield* writeSession(config.sessionFile, session)
  yield* Effect.logInfo(`signed in as ${userLabel(authorization.user)}; session saved to ${config.sessionFile} (mode 0600)`)
}, Effect.scoped)

const fromEnv = (name: string) => Flag.withFallbackConfig(Config.String(name))

export const login = Command.make("login", {
  phone: Flag.String("phone").pipe(
    fromEnv("TELEGRAM_PHONE"),
    Flag.withDescription("Phone number of the account, international format (default: $TELEGRAM_PHONE, else asked)"),
    Flag.optional
  ),
  code: Flag.String("code").pipe(
    fromEnv("TELEGRAM_CODE"),
    Flag.withDescription("Login code Telegram sent (default: $TELEGRAM_CODE, else asked)"),
    Flag.optional
  ),
  password: Flag.Redacted("password").pipe(
    Flag.withFallbackConfig(Config.Redacted("TELEGRAM_PASSWORD")),
    Flag.withDescription("Two-step verification password, if the account has one (default: $TELEGRAM_PASSWORD, else asked)"),
    Flag.optional
  )
}, (answers) =>
  Effect.gen(function*() {
    const flags = yield* root
    return yield* signIn(answers, terminalPrompt).pipe(withRuntime(configFile(flags)))
  })).pipe(
    Command.withDescription(
      "Sign the Telegram account in and write the session file (telegram.sessionFile) with mode 0600 in a 0700 directory"
    )
  )
