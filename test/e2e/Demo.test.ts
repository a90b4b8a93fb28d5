/**
 * The README's first quick-start command, as a process: `telegram-gateway
 * demo --messages N` against the built-in simulator and the local services
 * ends by itself, exits 0, and every event it posted reached every tier.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { uniqueName } from "../support/TestGateway.ts"

const bin = fileURLToPath(new URL("../../src/bin/telegram-gateway.ts", import.meta.url))

const runDemo = (args: ReadonlyArray<string>) =>
  Effect.promise(() =>
    new Promise<{ code: number | null; output: string }>((resolve) => {
      const child = spawn(process.execPath, ["--import", "tsx", bin, "demo", ...args], {
        env: {
          ...process.env,
          LOG_LEVEL: "Warn",
          HTTP_PORT: String(20_000 + Math.floor(Math.random() * 20_000)),
          REDIS_KEY_PREFIX: `${uniqueName("tgdemo")}:`,
          RABBITMQ_EXCHANGE: uniqueName("demo.messages")
        },
        stdio: ["ignore", "pipe", "pipe"]
      })
      let output = ""
      child.stdout.on("data", (chunk) => (output += chunk))
      child.stderr.on("data", (chunk) => (output += chunk))
      const timer = setTimeout(() => child.kill("SIGKILL"), 90_000)
      child.on("exit", (code) => {
        clearTimeout(timer)
        resolve({ code, output })
      })
    })
  )

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
