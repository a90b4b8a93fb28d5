/** `telegram-gateway channels`: the chats the account can see, to copy into `telegram.channels`. */
import { Console, Effect, Option } from "effect"
import { Command } from "effect/cli"
import type { ChatIdentity } from "../../services/ChannelRegistry.ts"
import { TelegramConfig } from "../../services/GatewayConfig.ts"
import { TelegramAccount } from "../../services/TelegramAccount.ts"
import { accountConfig } from "../Accounts.ts"
import { accountFlag } from "./AccountFlag.ts"

/** The id as `telegram.channels` takes it: -100… for channels and supergroups, -… for basic groups. */
export const configId = (chat: ChatIdentity): string =>
  chat.kind === "group" ? `-${chat.channelId}` : `-100${chat.channelId}`

export const formatChats = (chats: ReadonlyArray<ChatIdentity>): string => {
  const rows = [
    ["ID", "KIND", "USERNAME", "TITLE"],
    ...chats.map((chat) => [configId(chat), chat.kind, chat.username === null ? "-" : `@${chat.username}`, chat.title ?? ""])
  ]
  const widths = [0, 1, 2].map((column) => Math.max(...rows.map((row) => row[column]?.length ?? 0)))
  return rows.map((row) => row.map((cell, column) => cell.padEnd(widths[column] ?? 0)).join("  ").trimEnd()).join("\n")
}

export const listChats = (account: Option.Option<string> = Option.none()) =>
  Effect.gen(function*() {
    return yield* (yield* TelegramAccount).listChats(yield* accountConfig(yield* TelegramConfig, account))
  }).pipe(Effect.withSpan("Channels.list"))

export const channels = Command.make("channels", { account: accountFlag("List the chats of this account of telegram.accounts") }, ({ account }) =>
  Effect.gen(function*() {
    const chats = yield* listChats(account)
    yield* Console.log(formatChats(chats))
    yield* Console.log(`\n${chats.length} chat(s). Put the ids or @usernames to ingest in telegram.channels (TELEGRAM_CHANNELS), or in the account's channels in telegram.accounts.`)
  })).pipe(Command.withDescription("List the channels and groups the account can see, with their ids and usernames"))
