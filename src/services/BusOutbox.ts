/**
 * Where the bus relay keeps its progress: per exchange, the event_seq up to
 * which every committed event has a publisher confirm (sql/0010_bus_relay.up.sql).
 * The events themselves are read through `MessageQuery.events`, which never
 * skips one that commits later.
 */
import { Context, type Effect, type Option } from "effect"
import type { StoreError } from "./MessageStore.ts"

export class BusOutbox extends Context.Service<BusOutbox, {
  /** The mark of an exchange, if the relay has ever recorded one. */
  readonly readMark: (exchange: string) => Effect.Effect<Option.Option<bigint>, StoreError>
  /** Moves the mark forward (never back). */
  readonly saveMark: (exchange: string, seq: bigint) => Effect.Effect<void, StoreError>
  /** The highest event_seq committed so far (0 when there is none): where a new exchange starts. */
  readonly newestSeq: Effect.Effect<bigint, StoreError>
  /** Committed events above `seq`, counted up to `cap`. */
  readonly countAfter: (seq: bigint, cap: number) => Effect.Effect<number, StoreError>
}>()("telegram-gateway/BusOutbox") {}
