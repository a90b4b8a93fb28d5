/**
 * The configured Telegram accounts: `telegram.accounts`, or when that is
 * empty one account named `default` from `telegram.sessionFile` and
 * `telegram.channels`. Each comes with the `telegram.*` configuration its
 * source runs with (its own session file, chats and, if given, DC).
 */
import { Effect, Option } from "effect"
import type { TelegramConfig } from "../services/GatewayConfig.ts"
import { InvalidConfiguration } from "../services/InvalidConfiguration.ts"

export interface AccountSpec {
  readonly name: string
  readonly config: TelegramConfig
}

export const DEFAULT_ACCOUNT = "default"

export const accountsOf = (config: TelegramConfig): Effect.Effect<ReadonlyArray<AccountSpec>, InvalidConfiguration> =>
  Effect.suspend(() => {
    if (config.accounts.length === 0) return Effect.succeed([{ name: DEFAULT_ACCOUNT, config }])
    const seen = new Map<string, string>()
    for (const account of config.accounts) {
      const clash = seen.get(account.name) ?? seen.get(`file:${account.sessionFile}`)
      if (clash !== undefined) {
        return Effect.fail(
          new InvalidConfiguration({
            detail: `telegram.accounts: account "${account.name}" repeats the name or session file of account "${clash}"; each account needs its own name and session file`
          })
        )
      }
      seen.set(account.name, account.name)
      seen.set(`file:${account.sessionFile}`, account.name)
    }
    return Effect.succeed(config.accounts.map((account): AccountSpec => ({
      name: account.name,
      config: {
        ...config,
        sessionFile: account.sessionFile,
        channels: account.channels,
        dcId: account.dcId === undefined ? config.dcId : Option.some(account.dcId),
        dcAddress: account.dcAddress === undefined ? config.dcAddress : Option.some(account.dcAddress),
        dcPort: account.dcPort ?? config.dcPort,
        accounts: []
      }
    })))
  })

/**
 * The `telegram.*` configuration of the account a CLI command names with
 * `--account` (its session file and DC), or the whole section when none is
 * named. An unknown name fails naming the configured ones.
 */
export const accountConfig = (config: TelegramConfig, name: Option.Option<string>) =>
  Effect.gen(function*() {
    if (Option.isNone(name)) return config
    const accounts = yield* accountsOf(config)
    const found = accounts.find((account) => account.name === name.value)
    if (found === undefined) {
      return yield* new InvalidConfiguration({
        detail: `--account ${name.value}: telegram.accounts has no such account (configured: ${accounts.map((account) => account.name).join(", ")})`
      })
    }
    return found.config
  })
