/** Synthetic Telegram events for tests and benchmarks. */
import {
  ChannelId,
  MessageCreated,
  MessageDeleted,
  MessageEdited,
  MessageId,
  Sender,
  TelegramMessage
} from "../../src/domain/Message.ts"

let nextChannel = 1_000_000 + Math.floor(Math.random() * 1_000_000_000)

/** A channel id no other test run uses, so tiers shared by suites stay apart. */
export const freshChannelId = (): ChannelId => ChannelId.make(nextChannel++)

export const makeMessage = (
  channelId: ChannelId,
  messageId: number,
  overrides: Partial<ConstructorParameters<typeof TelegramMessage>[0]> = {}
): TelegramMessage =>
  new TelegramMessage({
    channelId,
    messageId: MessageId.make(messageId),
    date: 1_763_000_000 + messageId,
    editDate: null,
    sender: new Sender({ id: 42, kind: "channel", name: "Signals" }),
    text: `BUY BTCUSDT @ ${60_000 + messageId} TP 62000 SL 59000`,
    entities: [],
    media: null,
    replyToMessageId: null,
    groupedId: null,
    views: 10,
    forwards: 0,
    raw: { _: "message", id: messageId },
    ...overrides
  })

export const created = (message: TelegramMessage, receivedAt = Date.now()) =>
  new MessageCreated({ message, receivedAt })

export const edited = (message: TelegramMessage, editDate: number, text: string, receivedAt = Date.now()) =>
  new MessageEdited({ message: new TelegramMessage({ ...message, editDate, text }), receivedAt })

export const deleted = (channelId: ChannelId, messageId: number, receivedAt = Date.now()) =>
  new MessageDeleted({ channelId, messageId: MessageId.make(messageId), deletedAt: receivedAt, receivedAt })
