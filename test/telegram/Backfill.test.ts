/**
 * `telegram-gateway backfill` end to end: the gateway (`run`) and the command
 * as real child processes, Telegram as the simulator. The command never
 * connects to Telegram: the running owner of the account pages the history
 * through the normal commit path. The gateway is SIGKILLed mid-backfill and a
 * new one resumes the request from its committed cursor; afterwards
 * PostgreSQL holds every message of the channel exactly once, in its current
 * version, and nothing of what was deleted.
 */
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Duration, Effect, Layer, Option, Redacted, Runtime } from "effect"
import * as PgAccountLeases from "../../src/layers/PgAccountLeases.ts"
import * as PgBackfillRequests from "../../src/layers/PgBackfillRequests.ts"
import * as PgChannelRegistry from "../../src/layers/PgChannelRegistry.ts"
import * as PgClient from "../../src/layers/PgClient.ts"
import { backfill, type BackfillOptions } from "../../src/programs/Backfill.ts"
import { TelegramSimulator } from "../../src/simulator/index.ts"
import { query } from "../support/Database.ts"
import { simulatorEnv, startGatewayProcess } from "../support/GatewayProcess.ts"
import { makeTestConsumer, uniqueName } from "../support/TestGateway.ts"
import { storedState } from "./EngineHarness.ts"
import { makeSetup } from "./Harness.ts"

const HISTORY = 1500

/** The code the process exits with for this failure (1 when it names none). */
const exitCodeOf = (error: unknown) => (error as { readonly [Runtime.errorExitCode]?: number })[Runtime.errorExitCode] ?? 1
/** Message n of the history was sent at START + n minutes. */
const START = Math.floor(Date.now() / 1000) - 3 * 86_400

describe("backfill through the running gateway", () => {
  it.live("pages history into PostgreSQL, resumes after the gateway is killed mid-way, and says clearly what it cannot do", () =>
    Effect.gen(function*() {
      const sim = yield* TelegramSimulator.start({ differenceTimeout: 1 })
      const news = sim.world.addChannel({ username: "archive_news", title: "Archive", kind: "channel" })
      sim.world.addChannel({ username: "archive_other", title: "Other", kind: "channel" })
      for (let n = 1; n <= HISTORY; n++) sim.world.post(news, { text: `old ${n}`, date: START + n * 60 })
      for (let n = 10; n <= HISTORY; n += 97) sim.world.edit(news, n, `old ${n}, edited`)
      sim.world.delete(news, [5, 6, 700, 1499])
      const setup = yield* makeSetup(sim)
      const exchange = uniqueName("backfill.messages")
      yield* makeTestConsumer(exchange, { consume: false })
      const env = {
        DATABASE_URL: Redacted.value(setup.database.url),
        REDIS_KEY_PREFIX: `${uniqueName("tgbackfill")}:`,
        RABBITMQ_EXCHANGE: exchange,
        ...simulatorEnv(sim, setup.sessionFile, "@archive_news"),
        TELEGRAM_POLL_INTERVAL: "1 second",
        TELEGRAM_BACKFILL_POLL_INTERVAL: "500 millis",
        HA_LEASE_TTL: "4 seconds",
        HA_RENEW_INTERVAL: "1 second"
      }
      const command = (...args: ReadonlyArray<string>) => startGatewayProcess({ env, command: ["backfill", ...args] })
      // The command's program in this process (the machine is small: each process takes seconds to start).
      const printed: Array<string> = []
      const inProcess = (options: Partial<BackfillOptions>) =>
        backfill({
          channel: "@archive_news",
          account: Option.none(),
          since: Option.none(),
          fromId: Option.none(),
          until: Option.none(),
          untilId: Option.none(),
          timeout: Duration.minutes(2),
          terminal: false,
          print: (text) => Effect.sync(() => void printed.push(text)),
          ...options
        }).pipe(
          Effect.provide(Layer.mergeAll(PgAccountLeases.layerNoDeps, PgBackfillRequests.layerNoDeps, PgChannelRegistry.layerNoDeps)),
          Effect.provide(PgClient.layer),
          Effect.provide(ConfigProvider.layer(ConfigProvider.fromUnknown({
            database: { url: env.DATABASE_URL },
            telegram: { channels: ["@archive_news"], sessionFile: setup.sessionFile }
          })))
        )

      // Nobody owns the account yet: nothing could serve a request.
      const early = yield* inProcess({}).pipe(Effect.flip)
      assert.strictEqual(early._tag, "BackfillNoOwner")
      assert.strictEqual(exitCodeOf(early), 69)
      assert.match(early.message, /no gateway process owns account default/)

      const first = yield* startGatewayProcess({ env })
      yield* first.waitForLog(/archive_news: first read/, "120 seconds")

      // A chat the gateway does not listen to, and a range that makes no sense.
      const unknown = yield* inProcess({ channel: "@archive_other" }).pipe(Effect.flip)
      assert.strictEqual(exitCodeOf(unknown), 64)
      assert.match(unknown.message, /@archive_other is not among telegram\.channels.*configured: @archive_news \(default\)/)
      const backwards = yield* inProcess({ since: Option.some("2026-11-02"), until: Option.some("2026-11-01") }).pipe(Effect.flip)
      assert.strictEqual(exitCodeOf(backwards), 64)

      // The first 600 ids, slowly enough to kill the gateway in the middle; live posts go on meanwhile.
      sim.faults.delay("messages.GetHistory", 250)
      const head = yield* command("--channel", "@archive_news", "--until-id", "600")
      const cursor = query<{ cursor_id: number | null }>(setup.database, "SELECT cursor_id FROM backfill_requests ORDER BY id LIMIT 1")
      while (((yield* cursor)[0]?.cursor_id ?? 0) < 200) yield* Effect.sleep("100 millis")
      sim.world.post(news, { text: "live 1" })
      first.kill("SIGKILL")
      yield* first.exited
      const killedAt = (yield* cursor)[0]?.cursor_id ?? 0
      assert.isBelow(killedAt, 600, "killed before the request was done")
      sim.world.post(news, { text: "live 2, while down" })
      const second = yield* startGatewayProcess({ env })
      yield* second.waitForLog(/resuming after \d+/, "120 seconds")
      assert.strictEqual(yield* head.exited, 0, head.output())
      assert.match(head.output(), /backfill #1 of @archive_news done: \d+ message\(s\) committed from message ids \(0, 600\]/)
      assert.match(head.output(), /% \(message ids up to \d+ of \(0, 600\]\)/, "plain progress lines when not on a terminal")

      // The rest by date, cut short by --timeout; the same request asked again is followed to its end, not queued twice.
      sim.faults.delay("messages.GetHistory", 1000)
      const since = new Date((START + 601 * 60) * 1000).toISOString()
      const short = yield* command("--channel", "@archive_news", "--since", since, "--timeout", "1 second")
      assert.strictEqual(yield* short.exited, 75, short.output())
      assert.match(short.output(), /backfill #2 not done within .*run the same command again to follow it/)
      const rest = yield* inProcess({ since: Option.some(since) })
      assert.strictEqual(rest.id, 2)
      assert.match(printed.join("\n"), /backfill #2 of @archive_news .*already queued with this range: following it/)
      assert.match(printed.join("\n"), /done: \d+ message\(s\) committed from message ids \(600, 1502\]/)

      // Every message of the channel exactly once in its current version, nothing deleted stored.
      const expected = sim.world.history(news).map((message): [number, Array<string>] => [message.id, [message.message]])
      const stored = yield* storedState(setup)
      assert.deepStrictEqual([...(stored.versions.get(news.id) ?? new Map()).entries()].sort((a, b) => a[0] - b[0]), expected)
      const requests = yield* query<{ status: string; messages: number }>(setup.database, "SELECT status, messages FROM backfill_requests ORDER BY id")
      assert.deepStrictEqual(requests.map((row) => row.status), ["done", "done"])
      second.kill("SIGTERM")
      assert.strictEqual(yield* second.exited, 0)
    }), { timeout: 480_000 })
})
