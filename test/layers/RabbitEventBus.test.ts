/**
 * The EventBus against the machine's real RabbitMQ. Every test declares its
 * own exchange and queues, named after this run, and deletes them at the end;
 * outages go through a TCP proxy, never by stopping the shared broker.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Amqp from "amqplib"
import { ConfigProvider, Context, Duration, Effect, Exit, Fiber, Layer, Schedule, Scope } from "effect"
import {
  ChannelId,
  decodeMessageEventJson,
  eventKey,
  MessageCreated,
  MessageDeleted,
  MessageEdited,
  type MessageEvent,
  MessageId,
  TelegramMessage
} from "../../src/domain/Message.ts"
import * as RabbitEventBus from "../../src/layers/RabbitEventBus.ts"
import { type ConsumerQueueOptions, declareConsumerQueue } from "../../src/layers/RabbitTopology.ts"
import { BusUnavailable, EventBus } from "../../src/services/EventBus.ts"
import { makeTcpProxy } from "../support/TcpProxy.ts"

const brokerUrl = (port: number) => `amqp://guest:guest@127.0.0.1:${port}`
const run = `${Date.now().toString(36)}.${Math.random().toString(36).slice(2, 8)}`
const names = (label: string) => ({
  exchange: `test.event-bus.${run}.${label}`,
  queue: `test.event-bus.${run}.${label}.consumer`
})

const message = (channelId: number, messageId: number, editDate: number | null = null) =>
  new TelegramMessage({
    channelId: ChannelId.make(channelId),
    messageId: MessageId.make(messageId),
    date: 1_700_000_000,
    editDate,
    sender: null,
    text: `message ${messageId}`,
    entities: [],
    media: null,
    replyToMessageId: null,
    groupedId: null,
    views: 3,
    forwards: null,
    raw: { id: messageId }
  })

const created = (channelId: number, messageId: number): MessageEvent =>
  new MessageCreated({ message: message(channelId, messageId), receivedAt: Date.now() })

/** Builds a bus of its own (not memoised) that lives as long as the test. */
const makeBus = (settings: { readonly port: number; readonly exchange: string }) =>
  Layer.build(
    RabbitEventBus.layer.pipe(
      Layer.provide(ConfigProvider.layer(ConfigProvider.fromUnknown({
        rabbitmq: {
          url: brokerUrl(settings.port),
          exchange: settings.exchange,
          publishTimeout: "3 seconds",
          reconnectMaxDelay: "1 second"
        }
      })))
    )
  ).pipe(Effect.map((context) => Context.get(context, EventBus)))

/** The test's own consumer side: a plain amqplib channel, straight to the broker. */
const openChannel = Effect.acquireRelease(
  Effect.promise(async () => {
    const connection = await Amqp.connect(brokerUrl(5672))
    connection.on("error", () => {})
    return { connection, channel: await connection.createChannel() }
  }),
  ({ connection }) => Effect.promise(() => connection.close().catch(() => {}))
).pipe(Effect.map(({ channel }) => channel))

/**
 * Declares the consumer queue; at the end of the test deletes it, its dead
 * letters and both exchanges, on a fresh connection in case the test's
 * channel was closed by an error. Declare it before building the bus, so the
 * bus is torn down first and cannot redeclare the exchange after deletion.
 */
const consumerQueue = (channel: Amqp.Channel, options: ConsumerQueueOptions) =>
  Effect.acquireRelease(declareConsumerQueue(channel, options), (declared) =>
    Effect.promise(async () => {
      const connection = await Amqp.connect(brokerUrl(5672))
      const cleanup = await connection.createChannel()
      await cleanup.deleteQueue(declared.queue)
      await cleanup.deleteQueue(declared.deadLetterQueue)
      await cleanup.deleteExchange(declared.deadLetterExchange)
      await cleanup.deleteExchange(options.exchange)
      await connection.close()
    }))

const retryFor = (limit: Duration.Input) => ({
  schedule: Schedule.spaced("50 millis"),
  times: Math.ceil(Duration.toMillis(Duration.fromInputUnsafe(limit)) / 50)
})

/** The next message on the queue, polling for up to 5 seconds. */
const nextMessage = (channel: Amqp.Channel, queue: string) =>
  Effect.promise(() => channel.get(queue)).pipe(
    Effect.flatMap((got) => got === false ? Effect.fail(`no message on ${queue}`) : Effect.succeed(got)),
    Effect.retry(retryFor("5 seconds")),
    Effect.orDie
  )

const queueIsEmpty = (channel: Amqp.Channel, queue: string) =>
  Effect.promise(() => channel.checkQueue(queue)).pipe(Effect.map((reply) => reply.messageCount === 0))

const connected = (bus: EventBus["Service"]) => bus.ping.pipe(Effect.retry(retryFor("15 seconds")))
const disconnected = (bus: EventBus["Service"]) => Effect.flip(bus.ping).pipe(Effect.retry(retryFor("5 seconds")))

const assertBusUnavailable = <A>(exit: Exit.Exit<A, BusUnavailable>) => {
  assert.isTrue(Exit.isFailure(exit), "expected the publish to fail")
  if (Exit.isFailure(exit)) {
    const error = exit.cause.reasons.find((reason) => reason._tag === "Fail")
    assert.instanceOf(error?._tag === "Fail" ? error.error : undefined, BusUnavailable)
  }
}

describe("RabbitEventBus", () => {
  it.live("publishes persistent JSON keyed by the event key, routed by kind and channel", () =>
    Effect.gen(function*() {
      const { exchange, queue } = names("routing")
      const channel = yield* openChannel
      yield* consumerQueue(channel, { exchange, queue, bindingKeys: ["new.*", "deleted.*"] })
      const bus = yield* makeBus({ port: 5672, exchange })
      yield* connected(bus)

      const original = created(1001, 7)
      const edited = new MessageEdited({ message: message(1001, 7, 1_700_000_100), receivedAt: Date.now() })
      const deleted = new MessageDeleted({
        channelId: ChannelId.make(1001),
        messageId: MessageId.make(7),
        deletedAt: Date.now(),
        receivedAt: Date.now()
      })
      yield* bus.publish(original)
      yield* bus.publish(edited)
      yield* bus.publish(deleted)

      const first = yield* nextMessage(channel, queue)
      assert.strictEqual(first.fields.routingKey, "new.1001")
      assert.strictEqual(first.properties.messageId, eventKey(original))
      assert.strictEqual(first.properties.messageId, "1001:7:0")
      assert.strictEqual(first.properties.deliveryMode, 2)
      assert.strictEqual(first.properties.contentType, "application/json")
      assert.strictEqual(first.properties.type, "new")
      assert.strictEqual(first.properties.appId, "telegram-gateway")
      assert.isNumber(first.properties.timestamp)
      assert.deepStrictEqual(yield* decodeMessageEventJson(first.content.toString("utf8")), original)

      // `edited.1001` matches neither binding, so the next one is the deletion.
      const second = yield* nextMessage(channel, queue)
      assert.strictEqual(second.fields.routingKey, "deleted.1001")
      assert.strictEqual(second.properties.messageId, "1001:7:deleted")
      assert.deepStrictEqual(yield* decodeMessageEventJson(second.content.toString("utf8")), deleted)
      assert.isTrue(yield* queueIsEmpty(channel, queue))
    }))

  it.live("confirms 2,000 publishes started at once", () =>
    Effect.gen(function*() {
      const { exchange, queue } = names("burst")
      const channel = yield* openChannel
      yield* consumerQueue(channel, { exchange, queue, bindingKeys: ["#"] })
      const bus = yield* makeBus({ port: 5672, exchange })
      yield* connected(bus)

      const events = Array.from({ length: 2_000 }, (_, index) => created(2002, index + 1))
      const [elapsed] = yield* Effect.forEach(events, bus.publish, { concurrency: "unbounded", discard: true }).pipe(
        Effect.timed
      )
      const millis = Duration.toMillis(elapsed)
      console.log(`2,000 concurrent confirmed publishes: ${millis.toFixed(0)} ms (${(2_000_000 / millis).toFixed(0)}/s)`)

      const reply = yield* Effect.promise(() => channel.checkQueue(queue))
      assert.strictEqual(reply.messageCount, 2_000)
    }))

  it.live("publishes a batch with its confirms awaited together, and reports each event's failure while down", () =>
    Effect.gen(function*() {
      const { exchange, queue } = names("batch")
      const channel = yield* openChannel
      yield* consumerQueue(channel, { exchange, queue, bindingKeys: ["#"] })
      const proxy = yield* makeTcpProxy({ host: "127.0.0.1", port: 5672 })
      const bus = yield* makeBus({ port: proxy.port, exchange })
      yield* connected(bus)

      const batch = Array.from({ length: 300 }, (_, index) => created(2102, index + 1))
      const outcomes = yield* bus.publishAll(batch as [MessageEvent, ...Array<MessageEvent>])
      assert.deepStrictEqual(outcomes.filter((outcome) => outcome !== undefined), [])
      assert.strictEqual((yield* Effect.promise(() => channel.checkQueue(queue))).messageCount, 300)

      yield* proxy.cut
      yield* disconnected(bus)
      const down = yield* bus.publishAll([created(2102, 1000), created(2102, 1001)])
      assert.deepStrictEqual(down.map((outcome) => outcome?._tag), ["BusUnavailable", "BusUnavailable"])
    }))

  it.live("starts without RabbitMQ, fails fast, and connects once the broker is reachable", () =>
    Effect.gen(function*() {
      const { exchange, queue } = names("late-start")
      const channel = yield* openChannel
      yield* consumerQueue(channel, { exchange, queue, bindingKeys: ["#"] })
      const proxy = yield* makeTcpProxy({ host: "127.0.0.1", port: 5672 })
      yield* proxy.cut

      const [buildTime, bus] = yield* makeBus({ port: proxy.port, exchange }).pipe(Effect.timed)
      assert.isBelow(Duration.toMillis(buildTime), 500, "building the layer must not wait for the broker")
      assertBusUnavailable(yield* Effect.exit(bus.ping))
      assertBusUnavailable(yield* Effect.exit(bus.publish(created(3003, 1))))

      yield* proxy.restore
      yield* connected(bus)
      yield* bus.publish(created(3003, 2))
      assert.strictEqual((yield* nextMessage(channel, queue)).properties.messageId, "3003:2:0")
    }))

  it.live("fails fast while RabbitMQ is unreachable and reconnects by itself when it returns", () =>
    Effect.gen(function*() {
      const { exchange, queue } = names("outage")
      const channel = yield* openChannel
      yield* consumerQueue(channel, { exchange, queue, bindingKeys: ["#"] })
      const proxy = yield* makeTcpProxy({ host: "127.0.0.1", port: 5672 })
      const bus = yield* makeBus({ port: proxy.port, exchange })
      yield* connected(bus)
      yield* bus.publish(created(4004, 1))

      yield* proxy.cut
      yield* disconnected(bus)
      const [failTime, exit] = yield* Effect.exit(bus.publish(created(4004, 2))).pipe(Effect.timed)
      assertBusUnavailable(exit)
      assert.isBelow(Duration.toMillis(failTime), 100, "a publish while disconnected must not wait")

      yield* proxy.restore
      yield* connected(bus)
      yield* bus.publish(created(4004, 3))

      assert.strictEqual((yield* nextMessage(channel, queue)).properties.messageId, "4004:1:0")
      assert.strictEqual((yield* nextMessage(channel, queue)).properties.messageId, "4004:3:0")
      assert.isTrue(yield* queueIsEmpty(channel, queue))
    }))

  it.live("fails the unconfirmed publishes at once when the connection drops", () =>
    Effect.gen(function*() {
      const { exchange, queue } = names("drop")
      const channel = yield* openChannel
      yield* consumerQueue(channel, { exchange, queue, bindingKeys: ["#"] })
      const proxy = yield* makeTcpProxy({ host: "127.0.0.1", port: 5672 })
      const bus = yield* makeBus({ port: proxy.port, exchange })
      yield* connected(bus)

      const events = Array.from({ length: 1_000 }, (_, index) => created(7007, index + 1))
      const publishing = yield* Effect.forEach(events, (event) => Effect.exit(bus.publish(event)), {
        concurrency: "unbounded"
      }).pipe(Effect.timed, Effect.forkChild)
      yield* Effect.sleep("2 millis")
      yield* proxy.cut
      const [elapsed, exits] = yield* Fiber.join(publishing)

      // Well inside the 3 second publish timeout: the loss itself failed them.
      assert.isBelow(Duration.toMillis(elapsed), 2_000)
      const failures = exits.filter(Exit.isFailure)
      assert.isAbove(failures.length, 0, "the cut should have caught some publishes unconfirmed")
      for (const exit of failures) assertBusUnavailable(exit)
    }))

  it.live("keeps a message the consumer rejects in the dead-letter queue", () =>
    Effect.gen(function*() {
      const { exchange, queue } = names("dead-letter")
      const channel = yield* openChannel
      const declared = yield* consumerQueue(channel, { exchange, queue, bindingKeys: ["new.*"] })
      assert.strictEqual(declared.deadLetterQueue, `${queue}.dead`)
      assert.strictEqual(declared.deadLetterExchange, `${exchange}.dlx`)
      const bus = yield* makeBus({ port: 5672, exchange })
      yield* connected(bus)

      yield* bus.publish(created(5005, 9))
      const delivered = yield* nextMessage(channel, queue)
      channel.nack(delivered, false, false)

      const dead = yield* nextMessage(channel, declared.deadLetterQueue)
      assert.strictEqual(dead.properties.messageId, "5005:9:0")
      assert.strictEqual(dead.properties.headers?.["x-first-death-queue"], queue)
      assert.strictEqual(dead.properties.headers?.["x-first-death-reason"], "rejected")
      assert.isTrue(yield* queueIsEmpty(channel, queue))
    }))

  it.live("lets the confirms in flight arrive before it closes", () =>
    Effect.gen(function*() {
      const { exchange, queue } = names("teardown")
      const channel = yield* openChannel
      yield* consumerQueue(channel, { exchange, queue, bindingKeys: ["#"] })
      const busScope = yield* Scope.make()
      const bus = yield* makeBus({ port: 5672, exchange }).pipe(Scope.provide(busScope))
      yield* connected(bus)

      const events = Array.from({ length: 500 }, (_, index) => created(6006, index + 1))
      const publishing = yield* Effect.forEach(events, (event) => Effect.exit(bus.publish(event)), {
        concurrency: "unbounded"
      }).pipe(Effect.forkChild)
      yield* Effect.sleep("5 millis")
      yield* Scope.close(busScope, Exit.void)
      const exits = yield* Fiber.join(publishing)

      // A publish either was confirmed or was refused because the bus was closing;
      // none lost its confirm to the closing channel.
      const confirmed = exits.filter(Exit.isSuccess).length
      for (const exit of exits) {
        if (Exit.isFailure(exit)) assert.include(String(exit.cause), "shutting down")
      }
      assert.isAbove(confirmed, 0)
      const reply = yield* Effect.promise(() => channel.checkQueue(queue))
      assert.strictEqual(reply.messageCount, confirmed)
    }))
})
