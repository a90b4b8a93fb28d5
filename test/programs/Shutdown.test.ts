/**
 * SIGTERM with events accepted but not yet committed: the process commits
 * every one of them before it exits, and exits 0.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Redacted } from "effect"
import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { makeTestDatabase, query } from "../support/Database.ts"
import { freshChannelId } from "../support/TestEvents.ts"
import { uniqueName } from "../support/TestGateway.ts"

const fixture = fileURLToPath(new URL("../fixtures/ingest-until-signalled.ts", import.meta.url))

describe("Shutdown", () => {
  it.live("commits every accepted event before exiting on SIGTERM", () =>
    Effect.gen(function*() {
      const database = yield* makeTestDatabase("shutdown")
      const channelId = freshChannelId()
      const events = 5_000
      const child = spawn(process.execPath, ["--import", "tsx", fixture], {
        env: {
          ...process.env,
          DATABASE_URL: Redacted.value(database.url),
          REDIS_KEY_PREFIX: `${uniqueName("tgtest")}:`,
          RABBITMQ_EXCHANGE: uniqueName("test.shutdown"),
          // Nothing would be flushed for a long while: only the shutdown drain commits.
          INGEST_FLUSH_INTERVAL: "1 minute",
          INGEST_BATCH_SIZE: "100000",
          INGEST_QUEUE_CAPACITY: "100000",
          LOG_LEVEL: "Warn",
          EVENTS: String(events),
          CHANNEL_ID: String(channelId)
        },
        stdio: ["ignore", "pipe", "pipe"]
      })
      let output = ""
      child.stdout.on("data", (chunk) => (output += chunk))
      child.stderr.on("data", (chunk) => (output += chunk))
      const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)))

      yield* Effect.promise(() =>
        new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`child never accepted its events:\n${output}`)), 30_000)
          child.stdout.on("data", () => {
            if (output.includes(`accepted ${events}`)) {
              clearTimeout(timer)
              resolve()
            }
          })
        })
      )
      const committedBefore = yield* query<{ count: number }>(
        database,
        `SELECT count(*)::int AS count FROM messages WHERE channel_id = ${channelId}`
      )
      assert.strictEqual(committedBefore[0]?.count, 0, "nothing is committed before the signal")

      child.kill("SIGTERM")
      const code = yield* Effect.promise(() => exited)
      assert.strictEqual(code, 0, output)

      const committed = yield* query<{ count: number }>(
        database,
        `SELECT count(*)::int AS count FROM messages WHERE channel_id = ${channelId}`
      )
      assert.strictEqual(committed[0]?.count, events)
    }), { timeout: 90_000 })
})
