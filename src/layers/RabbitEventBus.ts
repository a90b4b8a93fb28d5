/**
 * The EventBus on RabbitMQ (amqplib): persistent JSON events on a durable
 * topic exchange, each publish confirmed by the broker.
 *
 * RabbitMQ is an optional tier, so building this layer never waits for the
 * broker: a background fiber connects, and reconnects forever with a jittered
 * exponential backoff whenever the connection or its channel is lost. While
 * there is no usable connection, `publish` fails at once with
 * `BusUnavailable` rather than queueing. docs/rabbitmq.md describes the
 * messages for consumers.
 */
import * as Amqp from "amqplib"
import { Array as Arr, Clock, Deferred, Duration, Effect, Exit, Layer, Option, Redacted, Schedule, Semaphore, type Tracer } from "effect"
import type { ConfigError } from "effect/Config"
import { encodeMessageEventJson, eventKey, eventKind, type MessageEvent } from "../domain/Message.ts"
import { coalesceWrites } from "./AmqpWrites.ts"
import { BusUnavailable, EventBus, routingKey, traceparent } from "../services/EventBus.ts"
import { OtelConfig, RabbitMqConfig } from "../services/GatewayConfig.ts"
import { describeCause } from "../domain/DescribeCause.ts"
import { declareExchange } from "./RabbitTopology.ts"

/** A TCP connect or AMQP handshake slower than this counts as a failed attempt. */
const connectTimeout = Duration.seconds(10)
/** Closing the channel and connection at teardown or after a loss, at most. */
const closeTimeout = Duration.seconds(2)
/** First reconnection delay; it doubles up to `reconnectMaxDelay`. */
const reconnectBaseDelay = Duration.millis(200)
/** Upper bound on waiting for the first connection attempt while the layer is built. */
const startupWait = Duration.seconds(5)

/**
 * One connection and its confirm channel. The mutable fields are written by
 * amqplib's events, which is why they are plain fields and not Refs.
 */
class Session {
  /** Why the broker refuses publishers (a memory or disk alarm), while it does. */
  blockedReason: string | undefined = undefined
  /** Completed when the channel's write buffer drains, while it is full. */
  drained: Deferred.Deferred<void> | undefined = undefined
  /** Completed, with the reason, when the connection or the channel goes. */
  readonly lost = Deferred.makeUnsafe<unknown>()
  /** When the broker last confirmed (or refused) a publish on this session, epoch ms (Clock's wall clock). */
  lastHeardAt: number

  readonly connection: Amqp.ChannelModel
  readonly channel: Amqp.ConfirmChannel

  // Listeners are attached synchronously as amqplib hands the objects over:
  // an 'error' event without a listener would crash the process.
  constructor(connection: Amqp.ChannelModel, channel: Amqp.ConfirmChannel, openedAt: number) {
    this.connection = connection
    this.channel = channel
    this.lastHeardAt = openedAt
    connection.on("error", (cause) => this.lose(cause))
    connection.on("close", (cause) => this.lose(cause ?? "connection closed"))
    connection.on("blocked", (reason) => (this.blockedReason = reason))
    connection.on("unblocked", () => (this.blockedReason = undefined))
    channel.on("error", (cause) => this.lose(cause))
    channel.on("close", () => this.lose("channel closed"))
    channel.on("drain", () => this.releaseDrainWaiters())
  }

  get isUp(): boolean {
    return !Deferred.isDoneUnsafe(this.lost)
  }

  /** `channel.publish` returned false: later publishes wait for 'drain'. */
  markFull(): void {
    this.drained ??= Deferred.makeUnsafe<void>()
  }

  private releaseDrainWaiters(): void {
    if (this.drained !== undefined) Deferred.doneUnsafe(this.drained, Effect.void)
    this.drained = undefined
  }

  /**
   * Gives up on a connection that stopped answering (no confirm at all for a
   * whole publish timeout, on a socket that reports no error, as when packets
   * are dropped): the socket is destroyed, so what the kernel still buffers
   * for it is never delivered late, and the supervisor connects afresh. A
   * broker that is slow but still confirming is not abandoned.
   */
  abandon(reason: string): void {
    this.lose(reason)
    const stream = (this.connection.connection as unknown as { stream?: { destroy?: () => void } }).stream
    stream?.destroy?.()
  }

  // Waiters for 'drain' are released too: their publish then fails at once.
  private lose(cause: unknown): void {
    Deferred.doneUnsafe(this.lost, Effect.succeed(cause))
    this.releaseDrainWaiters()
  }
}

/** The broker URL with the configured heartbeat, unless the URL sets its own. */
const withHeartbeat = (url: string, heartbeat: Duration.Duration): string => {
  const parsed = new URL(url)
  if (!parsed.searchParams.has("heartbeat")) {
    parsed.searchParams.set("heartbeat", String(Math.max(1, Math.round(Duration.toSeconds(heartbeat)))))
  }
  return parsed.toString()
}

const establish = async (url: string, now: () => number): Promise<Session> => {
  const connection = await Amqp.connect(url, {
    timeout: Duration.toMillis(connectTimeout),
    // Nagle's algorithm would hold each small publish for the previous one's ACK.
    noDelay: true,
    clientProperties: { connection_name: "telegram-gateway" }
  })
  // Until the Session owns the connection; it stays so that a late error is harmless.
  connection.on("error", () => {})
  // A batch's publishes leave in one write per pass of amqplib's multiplexer, not one each (AmqpWrites.ts).
  coalesceWrites(connection)
  try {
    const channel = await connection.createConfirmChannel()
    return new Session(connection, channel, now())
  } catch (cause) {
    await connection.close().catch(() => {})
    throw cause
  }
}

const closeSession = (session: Session) =>
  Effect.promise(async () => {
    await session.channel.close().catch(() => {})
    await session.connection.close().catch(() => {})
  }).pipe(Effect.interruptible, Effect.timeoutOption(closeTimeout), Effect.asVoid)

/** Interruptible: a connection that arrives after the interruption is closed, not leaked. */
const connect = (url: Redacted.Redacted<string>, heartbeat: Duration.Duration, now: () => number) =>
  Effect.acquireRelease(
    Effect.callback<Session, BusUnavailable>((resume) => {
      let abandoned = false
      establish(withHeartbeat(Redacted.value(url), heartbeat), now).then(
        (session) => abandoned ? void Effect.runFork(closeSession(session)) : resume(Effect.succeed(session)),
        (cause) => resume(Effect.fail(new BusUnavailable({ operation: "connect", cause })))
      )
      return Effect.sync(() => {
        abandoned = true
      })
    }),
    closeSession,
    { interruptible: true }
  )

/** Jittered exponential backoff, capped at `maxDelay` even after the jitter. */
export const reconnectSchedule = (maxDelay: Duration.Duration) =>
  Schedule.exponential(reconnectBaseDelay).pipe(
    Schedule.jittered,
    Schedule.modifyDelay(({ duration }) => Effect.succeed(Duration.min(duration, maxDelay))),
    Schedule.setInputType<BusUnavailable>(),
    // Debug only: the ingestion program reports an outage once, not per attempt.
    Schedule.tap(({ duration, input }) =>
      Effect.logDebug(`RabbitMQ unreachable, next attempt in ${Duration.format(duration)}: ${input.message}`)
    )
  )

const unavailable = (operation: string, cause: string) => new BusUnavailable({ operation, cause })

/**
 * Persistent JSON whose `message_id` is the event's stable key, with the
 * publish span's W3C `traceparent` header when tracing is on (docs/rabbitmq.md).
 */
const messageProperties = (event: MessageEvent, span: Tracer.Span | undefined, nowMillis: number): Amqp.Options.Publish => ({
  persistent: true,
  contentType: "application/json",
  messageId: eventKey(event),
  type: eventKind(event),
  timestamp: Math.floor(nowMillis / 1000),
  appId: "telegram-gateway",
  ...(span === undefined ? {} : { headers: { traceparent: traceparent(span) } })
})

const make = Effect.gen(function*() {
  const config = yield* RabbitMqConfig
  const tracing = Option.isSome((yield* OtelConfig).exporterOtlpEndpoint)
  const clock = yield* Clock.Clock
  /** Wall-clock milliseconds from Clock, for amqplib's callbacks and timers, which run outside any fiber. */
  const now = () => clock.currentTimeMillisUnsafe()
  // Plain variables, read by every publish: the connection's fiber and the
  // finalizer write them, and a publish reads them without an Effect of its own.
  let current: Session | undefined = undefined
  /** Why the last attempt failed or the last session ended, for the errors callers see. */
  let lastProblem = "still connecting"
  let closing = false
  const slots = yield* Semaphore.make(config.maxInFlight)

  /** The session if publishing can start now; never waits. */
  const usableSession = (operation: string): Effect.Effect<Session, BusUnavailable> =>
    Effect.suspend(() => {
      const session = current
      if (closing) return Effect.fail(unavailable(operation, "the event bus is shutting down"))
      if (session === undefined || !session.isUp) {
        return Effect.fail(unavailable(operation, `not connected to RabbitMQ (${lastProblem})`))
      }
      if (session.blockedReason !== undefined) {
        return Effect.fail(unavailable(operation, `the broker is blocking publishers (${session.blockedReason})`))
      }
      return Effect.succeed(session)
    })

  // Settled by the first connection attempt, success or failure: the layer
  // waits for it (bounded), so events at start-up are not refused merely
  // because the connection was still being opened.
  const firstAttempt = yield* Deferred.make<void>()

  /** One connection's life: connect, declare, serve publishes until it is lost. */
  const runSession = Effect.gen(function*() {
    const session = yield* connect(config.url, config.heartbeat, now)
    yield* declareExchange(session.channel, config.exchange)
    current = session
    yield* Deferred.succeed(firstAttempt, undefined)
    yield* Effect.logInfo(`Connected to RabbitMQ, publishing to exchange ${config.exchange}`)
    const cause = yield* Deferred.await(session.lost).pipe(Effect.ensuring(Effect.sync(() => (current = undefined))))
    lastProblem = `connection lost: ${describeCause(cause)}`
    yield* Effect.logDebug(`RabbitMQ connection lost: ${describeCause(cause)}`)
  }).pipe(
    Effect.tapError((error) =>
      Effect.sync(() => (lastProblem = describeCause(error.cause))).pipe(Effect.andThen(Deferred.succeed(firstAttempt, undefined)))
    ),
    Effect.scoped
  )

  // The retry covers consecutive failed attempts; after a session that came up
  // and was lost, the backoff starts again from its base delay.
  yield* runSession.pipe(
    Effect.retry(reconnectSchedule(config.reconnectMaxDelay)),
    Effect.repeat(Schedule.spaced(reconnectBaseDelay)),
    Effect.forkScoped
  )
  yield* Deferred.await(firstAttempt).pipe(Effect.timeoutOption(startupWait))

  // Registered after the fork so it runs first at teardown: refuse new
  // publishes, let the confirms in flight arrive, then the session closes.
  yield* Effect.addFinalizer(() =>
    Effect.sync(() => (closing = true)).pipe(
      Effect.andThen(Semaphore.withPermits(slots, config.maxInFlight)(Effect.void).pipe(Effect.interruptible)),
      Effect.timeoutOption(config.publishTimeout),
      Effect.asVoid
    )
  )

  const publishTimeoutMs = Duration.toMillis(config.publishTimeout)
  const notConfirmed = () => unavailable("publish", `not confirmed within ${Duration.format(config.publishTimeout)}`)

  /**
   * Publishes a batch and waits for every confirm until `deadline`: one
   * callback and one timer for the whole batch. Each event gets its own
   * outcome: `undefined` when confirmed, the error otherwise.
   */
  const sendAll = (
    session: Session,
    events: ReadonlyArray<MessageEvent>,
    spans: ReadonlyArray<Tracer.Span | undefined>,
    deadline: number
  ) =>
    Effect.callback<ReadonlyArray<BusUnavailable | undefined>>((resume) => {
      const outcomes: Array<BusUnavailable | undefined | null> = events.map(() => null)
      let pending = events.length
      const settle = (index: number, outcome: BusUnavailable | undefined) => {
        if (outcomes[index] !== null) return
        outcomes[index] = outcome
        endSpan(spans[index], outcome)
        if (--pending === 0) {
          clearTimeout(timer)
          resume(Effect.succeed(outcomes as ReadonlyArray<BusUnavailable | undefined>))
        }
      }
      const timer = setTimeout(() => {
        if (now() - session.lastHeardAt >= publishTimeoutMs) {
          session.abandon(`no publisher confirm for ${Duration.format(config.publishTimeout)}`)
        }
        for (let index = 0; index < events.length; index++) settle(index, notConfirmed())
      }, Math.max(0, deadline - now()))
      events.forEach((event, index) => {
        try {
          const writable = session.channel.publish(
            config.exchange,
            routingKey(event),
            Buffer.from(encodeMessageEventJson(event)),
            messageProperties(event, spans[index], now()),
            (error) => {
              session.lastHeardAt = now()
              settle(index, error ? new BusUnavailable({ operation: "publish", cause: error }) : undefined)
            }
          )
          if (!writable) session.markFull()
        } catch (cause) {
          // amqplib throws when the channel closed between our check and the write.
          settle(index, new BusUnavailable({ operation: "publish", cause }))
        }
      })
      return Effect.sync(() => clearTimeout(timer))
    })

  /** A publish's span ends when the broker confirms or refuses it, or when it is given up. */
  const endSpan = (span: Tracer.Span | undefined, outcome: BusUnavailable | undefined) =>
    span?.end(clock.currentTimeNanosUnsafe(), outcome === undefined ? Exit.void : Exit.fail(outcome))

  /** With tracing on, one producer span per event, under its message's trace or the current span. */
  const publishSpans = (events: ReadonlyArray<MessageEvent>, parents: ReadonlyArray<Tracer.AnySpan | undefined>) =>
    Effect.forEach(events, (event, index) =>
      Effect.makeSpan("EventBus.publish", {
        parent: parents[index],
        kind: "producer",
        attributes: {
          "messaging.system": "rabbitmq",
          "messaging.operation.type": "send",
          "messaging.destination.name": config.exchange,
          "messaging.rabbitmq.destination.routing_key": routingKey(event),
          "messaging.message.id": eventKey(event),
          "messaging.batch.message_count": events.length
        }
      }))

  // Runs for every batch of events, thousands of times a second: no span of
  // its own, since a span and a captured stack per call would cost more than
  // the call; each publish has one when tracing is on.
  const publishAll = Effect.fnUntraced(function*(
    events: Arr.NonEmptyReadonlyArray<MessageEvent>,
    parents: ReadonlyArray<Tracer.AnySpan | undefined> = []
  ) {
    const deadline = now() + publishTimeoutMs
    // A batch takes one slot per event, so the bound on confirms in flight holds.
    const batches = Arr.chunksOf(events, config.maxInFlight)
    const outcomes: Array<BusUnavailable | undefined> = []
    for (const batch of batches) {
      const spans: ReadonlyArray<Tracer.Span | undefined> = tracing
        ? yield* publishSpans(batch, parents.slice(outcomes.length, outcomes.length + batch.length))
        : []
      const sent = yield* usableSession("publish").pipe(
        Effect.andThen(Semaphore.withPermits(slots, batch.length)(Effect.gen(function*() {
          const session = yield* usableSession("publish")
          if (session.drained !== undefined) {
            yield* Deferred.await(session.drained).pipe(
              Effect.timeoutOrElse({ duration: Math.max(0, deadline - now()), orElse: () => Effect.fail(notConfirmed()) })
            )
          }
          return yield* sendAll(session, batch, spans, deadline)
        }))),
        Effect.catch((error) => Effect.succeed(batch.map(() => error)))
      )
      // Spans of publishes never sent (no usable connection) end here, failed.
      sent.forEach((outcome, index) => endSpan(spans[index], outcome))
      outcomes.push(...sent)
    }
    return outcomes as ReadonlyArray<BusUnavailable | undefined>
  })

  const publish = (event: MessageEvent) =>
    publishAll([event]).pipe(Effect.flatMap(([failure]) => (failure === undefined ? Effect.void : Effect.fail(failure))))

  return EventBus.of({ publish, publishAll, ping: Effect.asVoid(usableSession("ping")) })
})

export const layer: Layer.Layer<EventBus, ConfigError> = Layer.effect(EventBus, make)
