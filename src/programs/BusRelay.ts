/**
 * The bus relay: every committed event reaches RabbitMQ at least once.
 *
 * The hot path publishes each event as it arrives, for latency; this relay
 * reads the committed events back from PostgreSQL in commit order
 * (`MessageQuery.eventKeys`, which never skips an event that commits later:
 * keys only, so what the hot path published is not read back whole; the
 * events themselves, `MessageQuery.events`, only when some need publishing) and
 * publishes every one the hot path has not got confirmed: events published
 * while RabbitMQ was down or unreachable, whose confirm timed out, that the
 * hot path had no room for, or that a previous process committed before it
 * died. Its progress, per exchange, is a mark in PostgreSQL (BusOutbox): every
 * event at or below it is confirmed. The mark only moves over a contiguous run
 * of confirmed events, so a crash at any point republishes, never skips.
 *
 * Duplicates are possible and bounded (consumers dedupe on `message_id`):
 * events published but not yet passed by the mark when the process died, and
 * publishes that reached the broker although their confirm did not come back.
 */
import { Cause, Clock, Duration, Effect, Metric, Option, Schema } from "effect"
import {
  ChannelId,
  MessageCreated,
  MessageDeleted,
  MessageEdited,
  type MessageEvent,
  MessageId,
  TelegramMessage
} from "../domain/Message.ts"
import { BusOutbox } from "../services/BusOutbox.ts"
import type { EventBus } from "../services/EventBus.ts"
import { MessageQuery, type StoredEvent, type StoredEventKey } from "../services/MessageQuery.ts"
import * as Metrics from "../services/Metrics.ts"
import * as MessageTrace from "./MessageTrace.ts"
import type { PublishLedger } from "./PublishLedger.ts"
import type { TierHealth } from "./TierHealth.ts"

export interface BusRelayOptions {
  readonly bus: EventBus["Service"]
  readonly ledger: PublishLedger
  readonly rabbitmq: TierHealth
  readonly exchange: string
  /** Pause between passes when there is nothing left to publish. */
  readonly interval: Duration.Duration
  /** Events read per pass. */
  readonly pageSize: number
  /** How long an event the hot path is still publishing is left to it. */
  readonly grace: Duration.Duration
}

/** Ledger entries older than this are dropped: the relay has long passed them, or never will. */
const ledgerRetention = Duration.minutes(10)
/** Events published at once, each batch with its own `rabbitmq.publishTimeout`. */
const publishChunk = 500
/** Above this many, the backlog gauge stops counting. */
const backlogCountCap = 10_000_000

const decodeMessage = Schema.decodeUnknownSync(TelegramMessage)

/** The event as the hot path published it, rebuilt from its stored row. */
export const storedToEvent = (stored: StoredEvent): MessageEvent => {
  const receivedAt = Date.parse(stored.receivedAt)
  if (stored.message === null) {
    return new MessageDeleted({
      channelId: ChannelId.make(stored.channelId),
      messageId: MessageId.make(stored.messageId),
      deletedAt: stored.deletedAt === null ? receivedAt : Date.parse(stored.deletedAt),
      receivedAt
    })
  }
  const message = decodeMessage(stored.message)
  return stored.version === 0 ? new MessageCreated({ message, receivedAt }) : new MessageEdited({ message, receivedAt })
}

export const runBusRelay = Effect.fnUntraced(function*(options: BusRelayOptions) {
  const outbox = yield* BusOutbox
  const query = yield* MessageQuery
  const { bus, ledger, rabbitmq } = options
  const graceMs = Duration.toMillis(options.grace)
  let mark: bigint | undefined
  let savedMark: bigint | undefined

  /** Where this exchange's relay stands; a new exchange starts at the newest event, not at the beginning of history. */
  const initialMark = outbox.readMark(options.exchange).pipe(
    Effect.flatMap(Option.match({
      onSome: Effect.succeed,
      onNone: () =>
        outbox.newestSeq.pipe(Effect.tap((newest) => outbox.saveMark(options.exchange, newest)))
    })),
    Effect.tap((seq) => Effect.logInfo(`Bus relay for exchange ${options.exchange} resumes after event_seq ${seq}`))
  )

  /** One pass; true when it should run again at once (a full page was handled). */
  const pass = Effect.gen(function*() {
    mark ??= yield* initialMark
    const after = mark
    // The keys first: in steady state the hot path has had every event
    // confirmed, and the pass only moves the mark; the whole events are read
    // back only when one of them still needs publishing.
    const keys = yield* query.eventKeys({ after, limit: options.pageSize })
    const now = yield* Clock.currentTimeMillis
    ledger.prune(now - Duration.toMillis(ledgerRetention))

    /** The rows this pass may settle: up to the first one the hot path is still publishing. */
    const consideredOf = <Row extends StoredEventKey>(rows: ReadonlyArray<Row>): Array<Row> => {
      const considered: Array<Row> = []
      for (const row of rows) {
        const since = ledger.pendingSince(row.key)
        if (since !== undefined && now - since < graceMs) break
        considered.push(row)
      }
      return considered
    }
    let rows: ReadonlyArray<StoredEventKey> = keys
    let considered: ReadonlyArray<StoredEventKey> = consideredOf(keys)
    const failed = new Set<string>()
    const toPublish: Array<StoredEvent> = []
    const events: Array<MessageEvent> = []
    if (considered.some((row) => ledger.status(row.key) !== "confirmed")) {
      const full = yield* query.events({ after, channelId: undefined, limit: options.pageSize })
      const fullConsidered = consideredOf(full)
      rows = full
      considered = fullConsidered
      for (const row of fullConsidered) {
        if (ledger.status(row.key) === "confirmed") continue
        try {
          events.push(storedToEvent(row))
          toPublish.push(row)
        } catch (cause) {
          // Cannot happen for a row the store wrote; if it does, the row stays readable through the API.
          yield* Effect.logError("Bus relay cannot rebuild a stored event; it is not published").pipe(
            Effect.annotateLogs({ key: row.key, error: String(cause) })
          )
          yield* Metric.update(Metrics.eventsRejected.pipe(Metric.withAttributes({ reason: "relay" })), 1)
        }
      }
    }
    // In chunks, each with its own publish deadline, stopping at the first
    // chunk with a failure: the rest would fail too, and is left for later.
    let confirmed = 0
    let lastError: { readonly message: string } | undefined
    for (let start = 0; start < toPublish.length && lastError === undefined; start += publishChunk) {
      const chunk = events.slice(start, start + publishChunk) as [MessageEvent, ...Array<MessageEvent>]
      // Each publish joins its message's trace while this process still knows it (the ledger's span).
      const traces = toPublish.slice(start, start + publishChunk).map((row) => ledger.trace(row.key))
      const began = rabbitmq.began()
      const outcomes = yield* bus.publishAll(chunk, traces).pipe(
        Effect.withSpan("BusRelay.publish", {
          ...MessageTrace.batchSpanOptions(traces),
          attributes: { "batch.size": chunk.length }
        }),
        Effect.withTracerEnabled(true)
      )
      outcomes.forEach((error, index) => {
        if (error === undefined) {
          confirmed++
        } else {
          failed.add(toPublish[start + index]!.key)
          lastError = error
        }
      })
      if (lastError === undefined) yield* rabbitmq.succeeded(began)
      else {
        for (const row of toPublish.slice(start + publishChunk)) failed.add(row.key)
        yield* rabbitmq.failed(lastError, failed.size)
      }
    }
    yield* Metric.update(Metrics.busRelayPublished, confirmed)

    // The mark passes the contiguous run of confirmed events.
    let passed = 0
    for (const row of considered) {
      if (failed.has(row.key)) break
      ledger.forget(row.key)
      mark = row.seq
      passed++
    }
    if (mark !== savedMark) {
      yield* outbox.saveMark(options.exchange, mark)
      savedMark = mark
    }

    const waiting = rows.slice(passed)
    const backlog = rows.length < options.pageSize
      ? waiting.filter((row) => ledger.status(row.key) !== "confirmed").length
      : yield* outbox.countAfter(mark, backlogCountCap)
    yield* Metric.update(Metrics.busUnpublished, backlog)
    const oldest = waiting.find((row) => ledger.status(row.key) !== "confirmed")
    yield* Metric.update(Metrics.busRelayLag, oldest === undefined ? 0 : Math.max(0, now - Date.parse(oldest.receivedAt)) / 1000)
    return rows.length === options.pageSize && passed > 0
  })

  // PostgreSQL being down is the writer's to report; the relay just waits for it.
  // Its reads, several a second, start no trace: only its publishes do.
  const loop: Effect.Effect<never> = pass.pipe(
    Effect.withTracerEnabled(false),
    Effect.catchCause((cause) =>
      Cause.hasInterruptsOnly(cause)
        ? Effect.interrupt
        : Effect.logDebug(`Bus relay pass failed, trying again: ${Cause.pretty(cause)}`).pipe(Effect.as(false))
    ),
    Effect.flatMap((again) => (again ? Effect.void : Effect.sleep(options.interval))),
    Effect.forever
  )

  // The last mark reached is saved at shutdown too, so a clean restart republishes nothing.
  yield* Effect.addFinalizer(() =>
    Effect.suspend(() =>
      mark === undefined || mark === savedMark ? Effect.void : outbox.saveMark(options.exchange, mark)
    ).pipe(Effect.timeoutOption("2 seconds"), Effect.ignore)
  )
  return yield* loop
})
