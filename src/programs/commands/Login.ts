/**
 * `telegram-gateway login`: signs the account in (phone number, login code,
 * two-step password) and writes the session file atomically, mode 0600 in a
 * 0700 directory. Each answer comes from a flag, else the environment
 * (TELEGRAM_PHONE, TELEGRAM_CODE, TELEGRAM_PASSWORD), else a prompt. The
 * session is never printed or logged.
 */
import { Config, Effect, Option, type Redacted } from "effect"
import { Command, Flag } from "effect/cli"
import { AccountLeases } from "../../services/AccountLeases.ts"
import { TelegramConfig } from "../../services/GatewayConfig.ts"
import { SessionFiles } from "../../services/SessionFiles.ts"
import { TelegramAccount } from "../../services/TelegramAccount.ts"
import { accountConfig, DEFAULT_ACCOUNT } from "../Accounts.ts"
import { type Prompt, terminalPrompt } from "./Prompt.ts"
import { accountFlag } from "./AccountFlag.ts"

export { LoginFailed } from "../../services/TelegramAccount.ts"

export interface LoginAnswers {
  /** The account of `telegram.accounts` whose session file is written; none: `telegram.sessionFile`. */
  readonly account?: Option.Option<string>
  readonly phone: Option.Option<string>
  readonly code: Option.Option<string>
  readonly password: Option.Option<Redacted.Redacted<string>>
}

const answer = <A>(given: Option.Option<A>, ask: Effect.Effect<A>) =>
  Option.match(given, { onNone: () => ask, onSome: Effect.succeed })

/**
 * Signs in and saves the session. `seed` is a session to start from instead
 * of a new key exchange (the simulator's pre-shared key, in tests).
 */
export const signIn = (answers: LoginAnswers, prompt: Prompt, seed?: Redacted.Redacted<string>) =>
  Effect.gen(function*() {
    const config = yield* accountConfig(yield* TelegramConfig, answers.account ?? Option.none())
    const sessionFile = config.sessionFile
    const { session, user } = yield* (yield* TelegramAccount).signIn(config, {
      phone: answer(answers.phone, prompt.ask("Phone number (international format, e.g. +15550000001): ")),
      code: answer(answers.code, prompt.ask("Login code (sent to your Telegram app): ")),
      password: answer(answers.password, prompt.askSecret("Two-step verification password: "))
    }, seed)
    yield* (yield* SessionFiles).write(sessionFile, session)
    yield* Effect.logInfo(`signed in as ${user}; session saved to ${sessionFile} (mode 0600)`)
  }).pipe(Effect.withSpan("Login.signIn"))

/**
 * After a login the account may be taken again: clears the mark that a
 * session Telegram refused left in PostgreSQL (sql/0035, src/programs/AccountOwner.ts).
 * A database out of reach does not fail the login, whose session is saved:
 * a process given the new session file takes the account anyway, since the
 * mark names the refused key only.
 */
export const clearRefusal = (account: Option.Option<string> | undefined) =>
  Effect.gen(function*() {
    const name = Option.getOrElse(account ?? Option.none(), () => DEFAULT_ACCOUNT)
    const cleared = yield* (yield* AccountLeases).clearLoginNeeded(name)
    if (cleared) yield* Effect.logInfo(`account ${name}: its refused session is no longer marked in PostgreSQL; the gateways may take it again`)
  }).pipe(
    Effect.catch((error) =>
      Effect.logWarning(
        `the session is saved, but clearing the account's refused-session mark in PostgreSQL failed (${error.message}): gateways given the new session file take the account anyway; those with the old one keep standing by`
      )
    ),
    Effect.withSpan("Login.clearRefusal")
  )

const fromEnv = (name: string) => Flag.withFallbackConfig(Config.String(name))

export const login = Command.make("login", {
  account: accountFlag("Write the session of this account of telegram.accounts"),
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
  signIn(answers, terminalPrompt).pipe(Effect.andThen(clearRefusal(answers.account)))).pipe(
    Command.withDescription(
      "Sign the Telegram account in, write the session file (telegram.sessionFile, or the account's with --account) with mode 0600 in a 0700 directory, and clear the account's refused-session mark in PostgreSQL so the gateways take it again"
    )
  )
