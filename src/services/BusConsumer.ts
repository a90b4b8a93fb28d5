/**
 * A consumer of the gateway's exchange, as a downstream service runs one: the
 * demo uses it to show what reaches a bound queue. On RabbitMQ in
 * src/layers/RabbitConsumer.ts.
 */
import { type Config, Context, type Effect, type Scope } from "effect"
import type { BusUnavailable } from "./EventBus.ts"

export interface CountingConsumer {
  /** Messages received and acked so far. */
  readonly received: Effect.Effect<number>
}

export interface ConsumerOptions {
  readonly queue: string
  readonly bindingKeys: ReadonlyArray<string>
  /** Remove the queue (and its dead-letter queue) when the scope closes. */
  readonly deleteOnClose: boolean
}

export class BusConsumer extends Context.Service<BusConsumer, {
  /** Scoped: consumes (and acks) from a durable queue bound to the exchange with `bindingKeys`, counting what arrives. */
  readonly counting: (options: ConsumerOptions) => Effect.Effect<CountingConsumer, BusUnavailable | Config.ConfigError, Scope.Scope>
}>()("telegram-gateway/BusConsumer") {}
