/**
 * amqplib's writes, coalesced per pass of its multiplexer (src/layers/AmqpWrites.ts),
 * against the machine's real RabbitMQ: a burst of publishes leaves in a few
 * socket writes instead of one per publish, and every one is confirmed.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Amqp from "amqplib"
import { Effect } from "effect"
import type { Socket } from "node:net"
import { coalesceWrites } from "../../src/layers/AmqpWrites.ts"
import { uniqueName } from "../support/SharedNames.ts"

// Never bound, so autoDelete never removes it: the setup file deletes it after the file.
const exchange = uniqueName("test.amqp-writes")

/** Socket writes (`_write` and `_writev` calls) made while `count` messages are published at once, and their confirms. */
const burst = (coalesce: boolean, count: number) =>
  Effect.promise(async () => {
    const model = await Amqp.connect("amqp://guest:guest@127.0.0.1:5672", { noDelay: true })
    try {
      const applied = coalesce ? coalesceWrites(model) : false
      const channel = await model.createConfirmChannel()
      await channel.assertExchange(exchange, "topic", { durable: false, autoDelete: true })
      const socket = (model as unknown as { connection: { stream: Socket } }).connection.stream
      let writes = 0
      const write = socket._write.bind(socket)
      const writev = socket._writev?.bind(socket)
      socket._write = (...args) => (writes++, write(...args))
      if (writev !== undefined) socket._writev = (...args) => (writes++, writev(...args))
      const confirmed = await Promise.all(Array.from({ length: count }, (_, index) =>
        new Promise<boolean>((resolve) =>
          channel.publish(exchange, "new.1", Buffer.from(JSON.stringify({ index })), { persistent: true }, (error) =>
            resolve(error == null))
        )))
      const counted = writes
      await channel.close()
      return { applied, writes: counted, confirmed: confirmed.filter(Boolean).length }
    } finally {
      await model.close().catch(() => {})
    }
  })

describe("AmqpWrites", () => {
  it.live("a burst of 200 publishes leaves in a few writes, all confirmed", () =>
    Effect.gen(function*() {
      const coalesced = yield* burst(true, 200)
      assert.isTrue(coalesced.applied, "amqplib's multiplexer is where the wrapper expects it")
      assert.strictEqual(coalesced.confirmed, 200)
      assert.isAtMost(coalesced.writes, 5, `writes: ${coalesced.writes}`)
      // Without it, the same burst is a write per publish.
      const plain = yield* burst(false, 200)
      assert.strictEqual(plain.confirmed, 200)
      assert.isAtLeast(plain.writes, 200, `writes: ${plain.writes}`)
    }))
})
