/**
 * The event bus for downstream consumers, on RabbitMQ. Optional: a failure is
 * a `BusUnavailable` the caller degrades on; it never holds up the database.
 */
import { type Array, Context, type Effect, Schema, type Tracer } from "effect"
import { eventChannelId, eventKind, type MessageEvent } from "../domain/Message.ts"
import { describeCause } from "../domain/DescribeCause.ts"

export class BusUnavailable extends Schema.TaggedError<BusUnavailable>()("BusUnavailable", {
  operation: Schema.String,
  cause: Schema.Defect()
}) {
  override get message(): string {
    return `RabbitMQ ${this.operation} failed: ${describeCause(this.cause)}`
  }
}

export class EventBus extends Context.Service<EventBus, {
  /**
   * Publishes the event as persistent JSON whose AMQP `message_id` is the
   * event's stable key; succeeds once the broker has confirmed it.
   */
  readonly publish: (event: MessageEvent) => Effect.Effect<void, BusUnavailable>
  /**
   * Publishes many at once, confirms awaited together: each event's outcome is
   * `undefined` when confirmed, its error otherwise. It never fails as a whole.
   * With tracing on, each publish is a span under the event's entry in
   * `parents` (its message trace, src/programs/MessageTrace.ts), or under the
   * current span, and its context goes to consumers as the W3C `traceparent`.
   */
  readonly publishAll: (
    events: Array.NonEmptyReadonlyArray<MessageEvent>,
    parents?: ReadonlyArray<Tracer.AnySpan | undefined>
  ) => Effect.Effect<ReadonlyArray<BusUnavailable | undefined>>
  readonly ping: Effect.Effect<void, BusUnavailable>
}>()("telegram-gateway/EventBus") {}

/** `new.<channel>`, `edited.<channel>`, `deleted.<channel>`: bind `new.*` or `*.1234`. */
export const routingKey = (event: MessageEvent): string => `${eventKind(event)}.${eventChannelId(event)}`

/** A span's context as a W3C trace-context `traceparent` header (version 00). */
export const traceparent = (span: Tracer.AnySpan): string =>
  `00-${span.traceId.padStart(32, "0")}-${span.spanId}-${span.sampled ? "01" : "00"}`
