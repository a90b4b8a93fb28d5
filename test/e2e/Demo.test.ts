/**
 * The README's first quick-start command, as a process: `telegram-gateway
 * demo --messages N` against the built-in simulator and the local services
 * ends by itself, exits 0, and every event it posted reached every tier.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { runToExit } from "../support/GatewayProcess.ts"
import { uniqueName } from "../support/TestGateway.ts"

const runDemo = (args: ReadonlyArray<string>) =>
  runToExit({
    command: ["demo", ...args],
    env: {
      LOG_LEVEL: "Warn",
      REDIS_KEY_PREFIX: `${uniqueName("tgdemo")}:`,
      RABBITMQ_EXCHANGE: uniqueName("demo.messages")
    },
    timeout: "90 seconds"
  })

const count = (output: string, pattern: RegExp) => Number(pattern.exec(output.slice(output.lastIndexOf("Summary")))?.[1])

describe("demo", () => {
  it.live("posts, ingests into every tier, prints a summary and exits 0", () =>
    Effect.gen(function*() {
      const { code, output } = yield* runDemo(["--messages", "40", "--rate", "40"])
      assert.strictEqual(code, 0, output)
      const posted = count(output, /posted (\d+)/)
      const edited = count(output, /edited (\d+)/)
      const deleted = count(output, /deleted (\d+)/)
      assert.strictEqual(posted, 40)
      const events = posted + edited + deleted
      assert.strictEqual(count(output, /received (\d+)/), events, output)
      assert.strictEqual(count(output, /cached (\d+)/), events, output)
      assert.strictEqual(count(output, /published (\d+)/), events, output)
      assert.strictEqual(count(output, /committed (\d+)/), events, output)
      assert.strictEqual(count(output, /queue telegram-gateway\.demo received (\d+)/), events, output)
    }), { timeout: 120_000 })
})
