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
 * An event the hot path is still publishing is left to it for a grace period,
 * and the mark waits before it; the relay reads and publishes on past it (up
 * to `readAhead` events read and not yet confirmed), so the events the hot
 * path had no room for are not held behind a slow broker's confirms.
 *
 * Duplicates are possible and bounded (consumers dedupe on `message_id`):
 * events published but not yet passed by the mark when the process died (at
 * most `readAhead` past it), and publishes that reached the broker although
 * their confirm did not come back.
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
import type { LedgerEntry, PublishLedger } from "./PublishLedger.ts"
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
  /**
   * How many events read but not yet confirmed the relay holds before it
   * stops reading on: past the hot path's publishes in flight, so the events
   * it had no room for are published without waiting for those confirms.
   */
  readonly readAhead: number
  /** How long an event the hot path is still publishing is left to it. */
  readonly grace: Duration.Duration
}

/** Ledger entries older than this are dropped: the relay has long passed them, or never will. */
const ledgerRetention = Duration.minutes(10)
/** Events published at once, each batch with its own `rabbitmq.publishTimeout`. */
const publishChunk = 500
/** Above this many, the backlog gauge stops counting. */
const backlogCountCap = 10_000_000
/** Committed events the relay can never publish: unreadable, or removed by retention first. */
const relayRejected = Metrics.eventsRejected.pipe(Metric.withAttributes({ reason: "relay" }))

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

/** An event the relay waits on, and its ledger entry once it has one. */
interface Unsettled {
  readonly row: StoredEventKey
  entry: LedgerEntry | undefined
}

export const runBusRelay = Effect.fnUntraced(function*(options: BusRelayOptions) {
  const outbox = yield* BusOutbox
  const query = yield* MessageQuery
  const { bus, ledger, rabbitmq } = options
  const graceMs = Duration.toMillis(options.grace)
  let mark: bigint | undefined
  let savedMark: bigint | undefined
  /** The last event read; nothing at or below it can commit later. */
  let read = 0n
  /**
   * The events read above the mark not yet confirmed on the bus, in commit
   * order, each with its ledger entry once it has one: a pass reads every
   * one's outcome from its entry, not by a lookup (with a slow broker there
   * are thousands, several passes a second).
   */
  let unsettled: Array<Unsettled> = []

  /** Where this exchange's relay stands; a new exchange starts at the newest event, not at the beginning of history. */
  const initialMark = outbox.readMark(options.exchange).pipe(
    Effect.flatMap(Option.match({
      onSome: Effect.succeed,
      onNone: () =>
        outbox.newestSeq.pipe(Effect.tap((newest) => outbox.saveMark(options.exchange, newest)))
    })),
    Effect.tap((seq) => Effect.logInfo(`Bus relay for exchange ${options.exchange} resumes after event_seq ${seq}`))
  )

  /**
   * The whole events of `due` (in commit order), as far as one page from the
   * first of them reaches: the rest are published on the next pass. `gone`
   * are those within the page's reach no longer stored (retention dropped
   * them first): nothing is left to publish of them.
   */
  const readDue = (due: ReadonlyArray<StoredEventKey>) =>
    Effect.gen(function*() {
      const page = yield* query.events({ after: due[0]!.seq - 1n, channelId: undefined, limit: options.pageSize })
      const stored = new Set(page.map((row) => row.seq))
      const wanted = new Set(due.map((row) => row.seq))
      const reach = page.length < options.pageSize ? undefined : page[page.length - 1]!.seq
      const gone = due.filter((row) => !stored.has(row.seq) && (reach === undefined || row.seq <= reach))
      if (gone.length > 0) {
        yield* Effect.logWarning("Bus relay found committed events no longer stored before it published them").pipe(
          Effect.annotateLogs({ count: gone.length, first: gone[0]!.key })
        )
        yield* Metric.update(relayRejected, gone.length)
      }
      return { found: page.filter((row) => wanted.has(row.seq)), gone: gone.map((row) => row.seq) }
    })
  const noneDue = { found: [], gone: [] } as const

  /** One pass; true when it should run again at once (more is there to read or publish). */
  const pass = Effect.gen(function*() {
    if (mark === undefined) {
      mark = yield* initialMark
      read = mark
    }
    // The keys first: in steady state the hot path has had every event
    // confirmed, and the pass only moves the mark; the whole events are read
    // back only when one of them still needs publishing. Reading goes on past
    // events the hot path is still publishing, so those it had no room for
    // are not held behind their confirms, up to `readAhead` unsettled events.
    const reading = unsettled.length < options.readAhead
    const fresh = reading ? yield* query.eventKeys({ after: read, limit: options.pageSize }) : []
    const now = yield* Clock.currentTimeMillis
    ledger.prune(now - Duration.toMillis(ledgerRetention))

    // Confirmed by the hot path: settled. Still being published by it, within
    // the grace period: left to it. Anything else is the relay's to publish.
    const open: Array<Unsettled> = []
    const due: Array<StoredEventKey> = []
    const look = (item: Unsettled) => {
      const entry = item.entry ?? (item.entry = ledger.entry(item.row.key))
      if (entry?.confirmed === true) return ledger.forget(item.row.key)
      open.push(item)
      if (entry === undefined || entry.confirmed === false || now - entry.at >= graceMs) due.push(item.row)
    }
    for (const item of unsettled) look(item)
    for (const row of fresh) look({ row, entry: undefined })
    // Recorded before anything else can fail, so no event read is ever lost track of.
    if (fresh.length > 0) read = fresh[fresh.length - 1]!.seq
    unsettled = open

    const { found: toPublish, gone } = due.length === 0 ? noneDue : yield* readDue(due)
    const settled = new Set<bigint>(gone)
    const events: Array<MessageEvent> = []
    const rebuilt: Array<StoredEvent> = []
    for (const row of toPublish) {
      try {
        events.push(storedToEvent(row))
        rebuilt.push(row)
      } catch (cause) {
        // Cannot happen for a row the store wrote; if it does, the row stays readable through the API.
        settled.add(row.seq)
        yield* Effect.logError("Bus relay cannot rebuild a stored event; it is not published").pipe(
          Effect.annotateLogs({ key: row.key, error: String(cause) })
        )
        yield* Metric.update(relayRejected, 1)
      }
    }
    // In chunks, each with its own publish deadline, stopping at the first
    // chunk with a failure: the rest would fail too, and is left for later.
    let confirmed = 0
    let lastError: { readonly message: string } | undefined
    for (let start = 0; start < rebuilt.length && lastError === undefined; start += publishChunk) {
      const chunk = events.slice(start, start + publishChunk) as [MessageEvent, ...Array<MessageEvent>]
      const rows = rebuilt.slice(start, start + publishChunk)
      // Each publish joins its message's trace while this process still knows it (the ledger's span).
      const traces = rows.map((row) => ledger.trace(row.key))
      const began = rabbitmq.began()
      const outcomes = yield* bus.publishAll(chunk, traces).pipe(
        Effect.withSpan("BusRelay.publish", {
          ...MessageTrace.batchSpanOptions(traces),
          attributes: { "batch.size": chunk.length }
        }),
        Effect.withTracerEnabled(true)
      )
      let failures = 0
      outcomes.forEach((error, index) => {
        if (error === undefined) {
          confirmed++
          settled.add(rows[index]!.seq)
          ledger.forget(rows[index]!.key)
        } else {
          failures++
          lastError = error
        }
      })
      if (lastError === undefined) yield* rabbitmq.succeeded(began)
      else yield* rabbitmq.failed(lastError, failures + rebuilt.length - start - chunk.length)
    }
    yield* Metric.update(Metrics.busRelayPublished, confirmed)

    // The mark passes every event up to the first one not yet confirmed.
    if (settled.size > 0) unsettled = open.filter((item) => !settled.has(item.row.seq))
    mark = unsettled.length === 0 ? read : unsettled[0]!.row.seq - 1n
    if (mark !== savedMark) {
      yield* outbox.saveMark(options.exchange, mark)
      savedMark = mark
    }

    const moreToRead = !reading || fresh.length === options.pageSize
    const backlog = unsettled.length + (moreToRead ? yield* outbox.countAfter(read, backlogCountCap) : 0)
    yield* Metric.update(Metrics.busUnpublished, backlog)
    const oldest = unsettled[0]?.row
    yield* Metric.update(Metrics.busRelayLag, oldest === undefined ? 0 : Math.max(0, now - Date.parse(oldest.receivedAt)) / 1000)
    // Due events past the page read this pass are published on the next, at once.
    const dueBeyondPage = due.length > toPublish.length + gone.length
    return lastError === undefined && ((moreToRead && unsettled.length < options.readAhead) || dueBeyondPage)
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
