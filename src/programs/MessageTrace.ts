/**
 * One trace per message, for following an event from Telegram to a consumer
 * (docs/operations.md, "Traces"):
 *
 * - the root, `Ingestion.message`, from the moment ingestion accepts the
 *   event until both its paths are done: the hot path and the commit;
 * - children for the Redis write (`MessageCache.remember`) and each RabbitMQ
 *   publish (`EventBus.publish`, whose context travels to consumers in the
 *   AMQP `traceparent` header, src/layers/RabbitEventBus.ts), whether the hot
 *   path or the bus relay publishes;
 * - the PostgreSQL batch (`BatchWriter.commit`) is its own trace, as it
 *   carries many messages: it links every sampled message it commits, and
 *   each of them links back to it.
 *
 * Redis and RabbitMQ work is shared by a batch of events (HotPath.ts), so a
 * child starts when the batch's round trip starts. Children are made only for
 * sampled messages; with tracing off (no collector) no trace is begun at all.
 */
import { type Clock, Effect, Exit, type Tracer } from "effect"
import { eventChannelId, eventKey, eventKind, eventMessageId, type MessageEvent } from "../domain/Message.ts"

export interface MessageTrace {
  readonly span: Tracer.Span
  /** Whether the hot path (cache and bus) is done with the event. */
  hotPathDone: boolean
  /** Whether the event's batch is committed. */
  committed: boolean
}

/** An accepted event with its trace, when tracing is on. */
export interface Traced {
  readonly event: MessageEvent
  readonly trace?: MessageTrace | undefined
}

/** The root span of a message, sampled at `otel.sampleRatio` (src/layers/Tracing.ts). */
export const begin = (event: MessageEvent): Effect.Effect<MessageTrace> =>
  Effect.map(
    Effect.makeSpan("Ingestion.message", {
      root: true,
      kind: "consumer",
      attributes: {
        "messaging.system": "telegram",
        "messaging.destination.name": String(eventChannelId(event)),
        "messaging.message.id": eventKey(event),
        "telegram.channel_id": eventChannelId(event),
        "telegram.message_id": eventMessageId(event),
        "telegram.event_kind": eventKind(event)
      }
    }),
    (span) => ({ span, hotPathDone: false, committed: false })
  )

const finish = (trace: MessageTrace, clock: Clock.Clock) => {
  if (trace.hotPathDone && trace.committed) trace.span.end(clock.currentTimeNanosUnsafe(), Exit.void)
}

/** The hot path is done with the event; `skipped` when it had no room for it (the relay publishes it). */
export const hotPathDone = (trace: MessageTrace | undefined, clock: Clock.Clock, skipped = false): void => {
  if (trace === undefined || trace.hotPathDone) return
  if (skipped) trace.span.event("hot path full: left to the bus relay", clock.currentTimeNanosUnsafe())
  trace.hotPathDone = true
  finish(trace, clock)
}

/** The event is committed by the batch `batch`, which the root links to. */
export const committed = (trace: MessageTrace | undefined, clock: Clock.Clock, batch: Tracer.AnySpan | undefined): void => {
  if (trace === undefined || trace.committed) return
  if (batch !== undefined && trace.span.sampled) trace.span.addLinks([{ span: batch, attributes: { "link.reason": "committed in" } }])
  trace.committed = true
  finish(trace, clock)
}

/**
 * How a span over many messages (a batch) is linked and sampled, from their
 * root spans: it links the sampled ones, and is kept only when there is one
 * (untraced events leave the decision to the sampler).
 */
export const batchSpanOptions = (roots: ReadonlyArray<Tracer.AnySpan | undefined>) => {
  let traced = false
  const links: Array<Tracer.SpanLink> = []
  for (const span of roots) {
    if (span === undefined) continue
    traced = true
    if (span.sampled) links.push({ span, attributes: {} })
  }
  return { root: true, links, ...(traced && links.length === 0 ? { sampled: false } : {}) }
}

/**
 * A child span in each sampled message's trace for work those messages share
 * (one Redis round trip): started now, ended by `end`.
 */
export const startChildren = (
  traces: ReadonlyArray<MessageTrace | undefined>,
  name: string,
  attributes: Record<string, unknown>
): Effect.Effect<ReadonlyArray<Tracer.Span | undefined>> =>
  // The common case with tracing off or unsampled: nothing to do per event.
  !traces.some((trace) => trace?.span.sampled)
    ? Effect.succeed([])
    : Effect.forEach(traces, (trace) =>
      trace === undefined || !trace.span.sampled
        ? Effect.succeed(undefined)
        : Effect.makeSpan(name, { parent: trace.span, kind: "client", attributes }))

/** Ends the spans `startChildren` made, each with its own outcome. */
export const endChildren = (
  spans: ReadonlyArray<Tracer.Span | undefined>,
  clock: Clock.Clock,
  exitOf: (index: number, span: Tracer.Span) => Exit.Exit<unknown, unknown>
): void => {
  const now = clock.currentTimeNanosUnsafe()
  spans.forEach((span, index) => span?.end(now, exitOf(index, span)))
}
