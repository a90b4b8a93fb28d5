/**
 * The MessageStore in memory: the same idempotence on the stable key, no
 * database. For programs built from layers in tests, where the logic between
 * the services is under test rather than PostgreSQL (that is what
 * test/layers/PgMessageStore.test.ts is for). `beforeWrite` lets a test make
 * a write fail, die or hang, as a real connection can.
 */
import { type Array, Effect, Layer } from "effect"
import {
  eventChannelId,
  eventKey,
  eventMessageId,
  type MessageEvent,
  messageVersion
} from "../domain/Message.ts"
import { MessageStore, type StoreError, type StoredVersion } from "../services/MessageStore.ts"

export interface MemoryStoreOptions {
  /** Runs before every write; its failure (or defect, or hang) is the write's. */
  readonly beforeWrite?: (events: Array.NonEmptyReadonlyArray<MessageEvent>) => Effect.Effect<void, StoreError>
  /** Runs for every ping. */
  readonly ping?: Effect.Effect<void, StoreError>
}

export interface MemoryMessageStore {
  /** Every committed event by stable key, in commit order. */
  readonly committed: Map<string, MessageEvent>
}

export const make = (options: MemoryStoreOptions = {}) =>
  Effect.sync(() => {
    const committed = new Map<string, MessageEvent>()
    const store = MessageStore.of({
      writeBatch: (events) =>
        (options.beforeWrite?.(events) ?? Effect.void).pipe(
          Effect.andThen(Effect.sync(() => {
            let inserted = 0
            for (const event of events) {
              const key = eventKey(event)
              if (committed.has(key)) continue
              committed.set(key, event)
              inserted++
            }
            return { inserted, duplicates: events.length - inserted }
          }))
        ),
      versions: (channelId, messageId) =>
        Effect.sync(() => {
          const events = [...committed.values()].filter((event) =>
            eventChannelId(event) === channelId && eventMessageId(event) === messageId
          )
          const deletion = events.find((event) => event._tag === "MessageDeleted")
          return events.flatMap((event): Array<StoredVersion> =>
            event._tag === "MessageDeleted"
              ? []
              : [{
                version: messageVersion(event.message),
                message: event.message,
                deletedAt: deletion === undefined ? null : new Date(deletion.deletedAt)
              }]
          ).sort((a, b) => a.version - b.version)
        }),
      activeChannels: () => Effect.sync(() => [...new Set([...committed.values()].map(eventChannelId))]),
      recentEvents: ({ channelId, limit }) =>
        Effect.sync(() => [...committed.values()].filter((event) => eventChannelId(event) === channelId).slice(-limit)),
      ping: options.ping ?? Effect.void
    })
    return { store, memory: { committed } satisfies MemoryMessageStore }
  })

/** The store alone, as a layer. */
export const layer = (options: MemoryStoreOptions = {}) =>
  Layer.effect(MessageStore, Effect.map(make(options), ({ store }) => store))
