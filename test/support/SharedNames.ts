/**
 * Names on the machine's shared RabbitMQ and Redis, which every test run (and
 * CI, after us) shares: each test picks names no other run uses, and what it
 * made under them is removed after its file, whether its tests passed or not.
 *
 * `uniqueName` remembers every name it hands out; the setup file
 * (test/support/RemoveLeftovers.ts, `setupFiles` in vitest.config.ts) calls
 * `removeLeftovers` after each file. A name may have been used as an
 * exchange, a queue or a key prefix (`<name>:`), so each is removed as all
 * three: the exchange and its dead-letter exchange (`<name>.dlx`, declared by
 * consumers, src/layers/RabbitTopology.ts), the queue and its dead-letter
 * queue (`<name>.dead`), and every key under `<name>:`. Removing what does
 * not exist is a no-op, and nothing outside these names is touched.
 */
import * as Amqp from "amqplib"
import { Redis } from "ioredis"
import { randomUUID } from "node:crypto"
import { deadLetterExchangeName, deadLetterQueueName } from "../../src/layers/RabbitTopology.ts"

const handedOut = new Set<string>()

/** `<prefix>_<10 hex>`, remembered for `removeLeftovers`. */
export const uniqueName = (prefix: string) => {
  const name = `${prefix}_${randomUUID().replaceAll("-", "").slice(0, 10)}`
  handedOut.add(name)
  return name
}

/** The names handed out since the last call, forgotten by it. */
export const takeHandedOut = (): ReadonlyArray<string> => {
  const names = [...handedOut]
  handedOut.clear()
  return names
}

/** Deletes exchanges and queues by name, each on its own channel (a failed operation closes its channel). */
export const deleteRabbitNames = async (
  names: { readonly exchanges: ReadonlyArray<string>; readonly queues: ReadonlyArray<string> },
  url = "amqp://guest:guest@127.0.0.1:5672"
) => {
  const connection = await Amqp.connect(url)
  try {
    const attempt = async (operation: (channel: Amqp.Channel) => Promise<unknown>) => {
      const channel = await connection.createChannel()
      channel.on("error", () => {})
      try {
        await operation(channel)
        await channel.close()
      } catch {
        // already gone, or refused: the rest is still removed
      }
    }
    for (const queue of names.queues) await attempt((channel) => channel.deleteQueue(queue))
    for (const exchange of names.exchanges) await attempt((channel) => channel.deleteExchange(exchange))
  } finally {
    await connection.close()
  }
}

/**
 * Deletes every key under the given prefixes (`<name>:`), scanning once per
 * family of names (the part before the random suffix), so a file's dozens of
 * names cost a few passes over the keyspace, not dozens. Returns how many
 * keys it deleted.
 */
export const deleteRedisPrefixes = async (names: ReadonlyArray<string>, url = "redis://127.0.0.1:6379/0") => {
  if (names.length === 0) return 0
  const wanted = new Set(names)
  const families = new Set(names.map((name) => `${name.slice(0, name.lastIndexOf("_") + 1)}*:*`))
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 })
  let deleted = 0
  try {
    await redis.connect()
    for (const match of families) {
      for await (const batch of redis.scanStream({ match, count: 5000 }) as AsyncIterable<Array<string>>) {
        const ours = batch.filter((key) => wanted.has(key.slice(0, key.indexOf(":"))))
        if (ours.length > 0) deleted += await redis.unlink(...ours)
      }
    }
  } finally {
    redis.disconnect()
  }
  return deleted
}

/** Removes everything the shared RabbitMQ and Redis hold under these names (see the module's comment). */
export const removeLeftovers = async (names: ReadonlyArray<string>) => {
  if (names.length === 0) return
  await deleteRabbitNames({
    queues: names.flatMap((name) => [name, deadLetterQueueName(name)]),
    exchanges: names.flatMap((name) => [name, deadLetterExchangeName(name)])
  })
  await deleteRedisPrefixes(names)
}
