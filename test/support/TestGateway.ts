/**
 * The gateway's layers wired for a test: real Redis, RabbitMQ and PostgreSQL,
 * each reachable directly or through a `TcpProxy` the test can cut, with
 * names (database, key prefix, exchange) no other suite uses.
 */
import * as Amqp from "amqplib"
import { ConfigProvider, Effect, Layer, PubSub } from "effect"
import { eventKey, type MessageEvent } from "../../src/domain/Message.ts"
import { deadLetterExchangeName, deadLetterQueueName, declareConsumerQueue } from "../../src/layers/RabbitTopology.ts"
import * as Gateway from "../../src/main/Daemon.ts"
import type { IngestProgress } from "../../src/programs/IngestProgress.ts"
import { deleteRabbitNames, uniqueName } from "./SharedNames.ts"

export { uniqueName }

export interface TestGatewayOptions {
  /** Through PgBouncer, or through a proxy in front of it. */
  readonly databaseUrl: string
  readonly redisPort?: number
  readonly rabbitPort?: number
  readonly exchange: string
  readonly keyPrefix: string
  readonly ingest?: Record<string, string | number>
}

export const testConfig = (options: TestGatewayOptions) =>
  ConfigProvider.layer(ConfigProvider.fromUnknown({
    database: { url: options.databaseUrl, statementTimeout: "3 seconds", connectTimeout: "2 seconds", poolSize: 4 },
    redis: { url: `redis://127.0.0.1:${options.redisPort ?? 6379}/0`, keyPrefix: options.keyPrefix },
    rabbitmq: {
      url: `amqp://guest:guest@127.0.0.1:${options.rabbitPort ?? 5672}`,
      exchange: options.exchange,
      reconnectMaxDelay: "500 millis",
      publishTimeout: "2 seconds"
    },
    ingest: { batchSize: 200, flushInterval: "5 millis", tierTimeout: "3 seconds", ...options.ingest }
  }))

/** The ingestion program over the three real tiers, as the daemon builds it. */
export const testIngestion = (options: TestGatewayOptions) =>
  Layer.fresh(Gateway.ingestion).pipe(Layer.provide(testConfig(options)))

export type HotPathDone = Extract<IngestProgress, { _tag: "HotPathDone" }>

/**
 * Waits until every given event is both committed to PostgreSQL and through
 * its cache and bus work; returns the latter's notifications in arrival order.
 */
export const awaitSettled = (subscription: PubSub.Subscription<IngestProgress>, events: ReadonlyArray<MessageEvent>) =>
  Effect.gen(function*() {
    const uncommitted = new Set(events.map(eventKey))
    const hotPathPending = new Set(uncommitted)
    const done: Array<HotPathDone> = []
    while (uncommitted.size > 0 || hotPathPending.size > 0) {
      const progress = yield* PubSub.take(subscription)
      if (progress._tag === "Committed") {
        for (const event of progress.events) uncommitted.delete(eventKey(event))
      } else if (hotPathPending.delete(eventKey(progress.event))) {
        done.push(progress)
      }
    }
    return done
  })

/**
 * A consumer queue bound to every event of the exchange. When the scope
 * closes, the queue, its dead-letter queue, the exchange and its dead-letter
 * exchange are deleted, over a connection of their own (the consumer's
 * channel may have died with the test). With `consume: false` messages stay
 * on the queue (the broker still persists them) and only their count is
 * read, as the benchmark does.
 */
export const makeTestConsumer = (exchange: string, options: { readonly consume?: boolean } = {}) =>
  Effect.gen(function*() {
    const queue = uniqueName("test_consumer")
    yield* Effect.addFinalizer(() =>
      Effect.tryPromise(() =>
        deleteRabbitNames({
          queues: [queue, deadLetterQueueName(queue)],
          exchanges: [exchange, deadLetterExchangeName(exchange)]
        })
      ).pipe(Effect.ignore)
    )
    const connection = yield* Effect.acquireRelease(
      Effect.promise(() => Amqp.connect("amqp://guest:guest@127.0.0.1:5672")),
      (connection) => Effect.promise(() => connection.close()).pipe(Effect.ignore)
    )
    const channel = yield* Effect.promise(() => connection.createChannel())
    yield* declareConsumerQueue(channel, { exchange, queue, bindingKeys: ["#"] })
    const received: Array<Amqp.ConsumeMessage> = []
    if (options.consume !== false) {
      yield* Effect.promise(() => channel.consume(queue, (message) => message && received.push(message), { noAck: true }))
    }
    const queued = Effect.promise(() => channel.checkQueue(queue)).pipe(Effect.map((state) => state.messageCount))
    return { received, queued }
  })
