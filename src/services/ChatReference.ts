/**
 * A chat as an operator names it in `telegram.channels` or `--channel`
 * (@username, t.me link or numeric id), parsed without asking Telegram;
 * src/layers/GramJsResolve.ts resolves it to an id and access hash.
 */
import { Effect, Runtime, Schema } from "effect"
import type { KnownChat } from "./ChannelRegistry.ts"
import { ExitCode } from "./ExitCodes.ts"

export type ChatReference =
  | { readonly _tag: "Username"; readonly text: string; readonly username: string }
  /** `-100…` is a channel or supergroup, `-…` a basic group, a bare number either. */
  | { readonly _tag: "Id"; readonly text: string; readonly id: number; readonly kind: "channel" | "group" | "any" }

export class InvalidChatReference extends Schema.TaggedError<InvalidChatReference>()("InvalidChatReference", {
  text: Schema.String,
  reason: Schema.String
}) {
  /** A configuration error. */
  override readonly [Runtime.errorExitCode] = ExitCode.config
  override get message(): string {
    return `telegram.channels entry "${this.text}" is not usable: ${this.reason}. Use @username, https://t.me/username or a numeric id (see 'telegram-gateway channels')`
  }
}

const USERNAME = /^[a-zA-Z][a-zA-Z0-9_]{3,31}$/

export const parseChatReference = (text: string): Effect.Effect<ChatReference, InvalidChatReference> =>
  Effect.suspend((): Effect.Effect<ChatReference, InvalidChatReference> => {
    const invalid = (reason: string) => Effect.fail(new InvalidChatReference({ text, reason }))
    const trimmed = text.trim()
    const id = /^(-100|-)?(\d{1,16})$/.exec(trimmed)
    if (id !== null) {
      const value = Number(id[2])
      if (value <= 0) return invalid("an id must be positive")
      return Effect.succeed({ _tag: "Id", text, id: value, kind: id[1] === "-100" ? "channel" : id[1] === "-" ? "group" : "any" })
    }
    const path = trimmed.replace(/^(https?:\/\/)?(www\.)?(t\.me|telegram\.me|telegram\.dog)\//i, "")
    const privateLink = /^c\/(\d{1,16})(\/\d+)?\/?$/.exec(path)
    if (privateLink !== null) return Effect.succeed({ _tag: "Id", text, id: Number(privateLink[1]), kind: "channel" })
    if (path.startsWith("+") || path.startsWith("joinchat/")) {
      return invalid("invite links cannot be resolved; join the chat with the account, then use its id")
    }
    const username = path.replace(/^@/, "").replace(/\/\d*\/?$/, "")
    if (!USERNAME.test(username)) return invalid("not a valid username (5-32 letters, digits or underscores)")
    return Effect.succeed({ _tag: "Username", text, username })
  })

/** Whether a registry entry is the chat a reference names. */
export const matches = (reference: ChatReference, chat: KnownChat): boolean => {
  if (reference._tag === "Username") return chat.username?.toLowerCase() === reference.username.toLowerCase()
  if (chat.channelId !== reference.id) return false
  return reference.kind === "any" || (reference.kind === "group") === (chat.kind === "group")
}
