/**
 * A benchmark's Redis keys live on in the machine's shared Redis after the run
 * (dedup keys for 7 days, cached messages for days): every bench that points
 * the gateway at a key prefix of its own removes that prefix's keys when it
 * ends.
 */
import { Effect } from "effect"
import { Redis } from "ioredis"

/** Unlinks every key under `keyPrefix` in the shared Redis; failures are ignored (a clean-up must not fail the run). */
export const removeRunKeys = (keyPrefix: string) =>
  Effect.tryPromise(async () => {
    const redis = new Redis("redis://127.0.0.1:6379/0")
    try {
      let cursor = "0"
      do {
        const [next, keys] = await redis.scan(cursor, "MATCH", `${keyPrefix}*`, "COUNT", 1000)
        if (keys.length > 0) await redis.unlink(...keys)
        cursor = next
      } while (cursor !== "0")
    } finally {
      redis.disconnect()
    }
  }).pipe(Effect.ignore)
