/**
 * The RabbitMQ topology of the gateway: the topic exchange it publishes to,
 * and the durable queue a consumer binds to it, with a dead-letter queue that
 * keeps what the consumer rejects. Every declaration is idempotent, so the
 * publisher and each consumer may run them on every (re)connect.
 * docs/rabbitmq.md describes the topology for consumers in other languages.
 */
import type { Channel } from "amqplib"
import { Effect } from "effect"
import { BusUnavailable } from "../services/EventBus.ts"

export interface ConsumerQueueOptions {
  /** The gateway's exchange, `rabbitmq.exchange` (default `telegram.messages`). */
  readonly exchange: string
  /** The consumer's queue; its dead letters go to `<queue>.dead`. */
  readonly queue: string
  /** Topic patterns over `<kind>.<channel>`, e.g. `new.*`, `*.1234`, `#`. */
  readonly bindingKeys: ReadonlyArray<string>
}

/** The names `declareConsumerQueue` declared, for consuming and for cleaning up. */
export interface ConsumerQueue {
  readonly queue: string
  readonly deadLetterExchange: string
  readonly deadLetterQueue: string
}

export const deadLetterExchangeName = (exchange: string): string => `${exchange}.dlx`
export const deadLetterQueueName = (queue: string): string => `${queue}.dead`

const declare = <A>(operation: string, run: () => Promise<A>) =>
  Effect.tryPromise({ try: run, catch: (cause) => new BusUnavailable({ operation, cause }) })

/** The durable topic exchange events are published to. */
export const declareExchange = (channel: Channel, exchange: string): Effect.Effect<void, BusUnavailable> =>
  declare(`declare exchange ${exchange}`, () => channel.assertExchange(exchange, "topic", { durable: true })).pipe(
    Effect.asVoid
  )

/**
 * Declares a durable queue bound to the exchange with `bindingKeys`, and its
 * dead-letter queue. The dead-letter exchange `<exchange>.dlx` is shared by
 * all consumers, so it is a direct exchange keyed by the queue name: a
 * message rejected (requeue=false) or expired in `<queue>` lands in
 * `<queue>.dead` and nowhere else.
 */
export const declareConsumerQueue = Effect.fn("RabbitTopology.declareConsumerQueue")(function*(
  channel: Channel,
  options: ConsumerQueueOptions
) {
  const deadLetterExchange = deadLetterExchangeName(options.exchange)
  const deadLetterQueue = deadLetterQueueName(options.queue)
  yield* declareExchange(channel, options.exchange)
  yield* declare(
    `declare exchange ${deadLetterExchange}`,
    () => channel.assertExchange(deadLetterExchange, "direct", { durable: true })
  )
  yield* declare(`declare queue ${deadLetterQueue}`, () => channel.assertQueue(deadLetterQueue, { durable: true }))
  yield* declare(
    `bind queue ${deadLetterQueue}`,
    () => channel.bindQueue(deadLetterQueue, deadLetterExchange, options.queue)
  )
  yield* declare(`declare queue ${options.queue}`, () =>
    channel.assertQueue(options.queue, {
      durable: true,
      deadLetterExchange,
      deadLetterRoutingKey: options.queue
    }))
  for (const bindingKey of options.bindingKeys) {
    yield* declare(
      `bind queue ${options.queue} to ${bindingKey}`,
      () => channel.bindQueue(options.queue, options.exchange, bindingKey)
    )
  }
  return { queue: options.queue, deadLetterExchange, deadLetterQueue } satisfies ConsumerQueue
})
