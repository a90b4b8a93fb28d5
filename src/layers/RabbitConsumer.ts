/**
 * A consumer of the gateway's exchange, as a downstream service runs one: a
 * durable queue with its dead-letter queue (RabbitTopology), messages acked
 * as they are read. The demo uses it to show what reaches a bound queue.
 */
import * as Amqp from "amqplib"
import { Effect, Layer, Redacted } from "effect"
import { BusConsumer, type ConsumerOptions, type CountingConsumer } from "../services/BusConsumer.ts"
import { BusUnavailable } from "../services/EventBus.ts"
import { RabbitMqConfig } from "../services/GatewayConfig.ts"
import { declareConsumerQueue } from "./RabbitTopology.ts"

/** Scoped: the connection closes with the scope; `deleteOnClose` removes the queues too. */
export const countingConsumer = Effect.fn("RabbitConsumer.countingConsumer")(function*(options: ConsumerOptions) {
  const config = yield* RabbitMqConfig
  const attempt = <A>(operation: string, run: () => Promise<A>) =>
    Effect.tryPromise({ try: run, catch: (cause) => new BusUnavailable({ operation, cause }) })
  const connection = yield* Effect.acquireRelease(
    attempt("connect consumer", () => Amqp.connect(Redacted.value(config.url))),
    (connection) => Effect.promise(() => connection.close()).pipe(Effect.ignore)
  )
  const channel = yield* attempt("open consumer channel", () => connection.createChannel())
  const declared = yield* declareConsumerQueue(channel, { exchange: config.exchange, ...options })
  if (options.deleteOnClose) {
    yield* Effect.addFinalizer(() =>
      Effect.promise(async () => {
        await channel.deleteQueue(declared.queue)
        await channel.deleteQueue(declared.deadLetterQueue)
      }).pipe(Effect.ignore)
    )
  }
  let received = 0
  yield* attempt("consume", () =>
    channel.consume(declared.queue, (message) => {
      if (message === null) return
      received++
      channel.ack(message)
    }))
  return { received: Effect.sync(() => received) } satisfies CountingConsumer
})

/** BusConsumer on RabbitMQ: each consumer has its own connection, from `rabbitmq.*` when it starts. */
export const layer = Layer.succeed(BusConsumer, BusConsumer.of({ counting: countingConsumer }))
