/**
 * The chats the gateway listens to, as resolved once from the configuration
 * (id, access hash, username, title, kind). Kept so that a restart never asks
 * Telegram to resolve a known username again (bursts of
 * contacts.resolveUsername earn hours-long flood bans). How far each chat is
 * read is the update engine's state (src/services/UpdateState.ts).
 */
import { Context, type Effect, Schema } from "effect"
import { describeCause } from "../domain/DescribeCause.ts"

/** Channels and supergroups have access hashes; basic groups do not. */
export const ChatKind = Schema.Literals(["channel", "supergroup", "group"])
export type ChatKind = typeof ChatKind.Type

/** What Telegram told us about a chat when it was resolved. */
export interface ChatIdentity {
  readonly channelId: number
  readonly accessHash: string | null
  readonly username: string | null
  readonly title: string | null
  readonly kind: ChatKind
}

export type KnownChat = ChatIdentity

export class RegistryError extends Schema.TaggedError<RegistryError>()("RegistryError", {
  operation: Schema.String,
  cause: Schema.Defect()
}) {
  override get message(): string {
    return `Channel registry ${this.operation} failed: ${describeCause(this.cause)}`
  }
}

export class ChannelRegistry extends Context.Service<ChannelRegistry, {
  readonly list: Effect.Effect<ReadonlyArray<KnownChat>, RegistryError>
  /** Records or refreshes a chat's identity. */
  readonly remember: (chat: ChatIdentity) => Effect.Effect<void, RegistryError>
}>()("telegram-gateway/ChannelRegistry") {}
