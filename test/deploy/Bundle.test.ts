/**
 * The build as it is deployed: deploy/scripts/bundle.mjs writes the daemon
 * and the API into an application directory laid out as install.sh lays out
 * /opt/telegram-gateway (dist/, sql/, node_modules, package.json), and the
 * two bundles, run with plain node from there, do their work: `migrate`
 * applies every migration in sql/ to an empty database, `run` takes posts
 * from the Telegram simulator over GramJS into PostgreSQL, Redis and
 * RabbitMQ and stops cleanly on SIGTERM, and the API serves those events;
 * and `run` SIGKILLed mid-stream and started again loses and repeats
 * nothing in PostgreSQL and loses nothing on the bus.
 */
import { assert, layer } from "@effect/vitest"
import { Context, Effect, Fiber, Layer, Redacted } from "effect"
import { execFile } from "node:child_process"
import { createHash } from "node:crypto"
import * as Fs from "node:fs/promises"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { Redis } from "ioredis"
import { writeSession } from "../../src/layers/SessionFile.ts"
import { TelegramSimulator } from "../../src/simulator/index.ts"
import { makeTestDatabase, query } from "../support/Database.ts"
import { eventually, eventuallyEffect } from "../support/Eventually.ts"
import { freePort, runToExit, simulatorEnv, startGatewayProcess } from "../support/GatewayProcess.ts"
import { makeTestConsumer, uniqueName } from "../support/TestGateway.ts"
import { awaitExactEquality, Ledger } from "../telegram/EngineHarness.ts"
import { makeSessionDirectory, makeSetup } from "../telegram/Harness.ts"

const repository = fileURLToPath(new URL("../../", import.meta.url))

/** A temporary application directory with the bundles in dist/bin and the rest linked from this checkout, built once for the file. */
class BundledApp extends Context.Service<BundledApp, { readonly app: string; readonly output: string }>()("test/BundledApp") {
  static readonly layer = Layer.effect(
    BundledApp,
    Effect.acquireRelease(
      Effect.promise(async () => {
        const app = await Fs.mkdtemp(Path.join(Os.tmpdir(), "tg-bundle-test-"))
        await Fs.symlink(Path.join(repository, "sql"), Path.join(app, "sql"))
        await Fs.symlink(Path.join(repository, "node_modules"), Path.join(app, "node_modules"))
        await Fs.copyFile(Path.join(repository, "package.json"), Path.join(app, "package.json"))
        const output = await new Promise<string>((resolve, reject) =>
          execFile(process.execPath, [Path.join(repository, "deploy/scripts/bundle.mjs"), "--outdir", Path.join(app, "dist")],
            (error, stdout, stderr) => error ? reject(new Error(`bundle.mjs failed: ${stderr}`)) : resolve(stdout))
        )
        return BundledApp.of({ app, output })
      }),
      ({ app }) => Effect.promise(() => Fs.rm(app, { recursive: true, force: true }))
    )
  )
}

/** The package an import names: `telegram` of `telegram/sessions/index.js`, `@scope/name` of `@scope/name/x`. */
const packageOf = (path: string) => path.split("/").slice(0, path.startsWith("@") ? 2 : 1).join("/")

const program = (app: string, name: string) => Path.join(app, "dist", "bin", `${name}.js`)

layer(BundledApp.layer, { timeout: "2 minutes", excludeTestServices: true })("the bundled build (deploy/scripts/bundle.mjs)", (it) => {
  it.effect("holds Effect and our code, and leaves GramJS, ioredis, amqplib and Node's modules to node_modules", () =>
    Effect.gen(function*() {
      const { app, output } = yield* BundledApp
      assert.match(output, /bundle: .*telegram-gateway\.js \(\d+ KiB\)/)
      for (const name of ["telegram-gateway", "telegram-gateway-api"]) {
        const text = yield* Effect.promise(() => Fs.readFile(program(app, name), "utf8"))
        const imported = [...text.matchAll(/^import .* from "([^"]+)";$/gm)].map((match) => match[1]!)
        assert.deepStrictEqual(imported.filter((path) => /^(effect|@effect\/|\.)/.test(path)), [], `${name} imports nothing bundled`)
        assert.isTrue(imported.includes("ioredis"), `${name} loads ioredis from node_modules`)
        // A package outside the bundle that imported Effect would load a second Effect beside the bundled one.
        for (const packageName of new Set(imported.filter((path) => !path.startsWith("node:")).map(packageOf))) {
          const manifest = JSON.parse(
            yield* Effect.promise(() => Fs.readFile(Path.join(repository, "node_modules", packageName, "package.json"), "utf8"))
          ) as { dependencies?: Record<string, string>; peerDependencies?: Record<string, string> }
          const needs = Object.keys({ ...manifest.dependencies, ...manifest.peerDependencies })
          assert.deepStrictEqual(needs.filter((dependency) => /^(effect|@effect\/)/.test(dependency)), [], `${packageName} does not import Effect`)
        }
        assert.isTrue(text.startsWith("#!/usr/bin/env node"), `${name} keeps its shebang`)
        assert.isTrue(text.trimEnd().endsWith(`//# sourceMappingURL=${name}.js.map`), `${name} names its source map`)
      }
      const daemon = yield* Effect.promise(() => Fs.readFile(program(app, "telegram-gateway"), "utf8"))
      assert.match(daemon, /^import .* from "telegram\/sessions\/index\.js";$/m)
    }).pipe(Effect.scoped), 60_000)

  it.effect("migrates an empty database, ingests from Telegram into the three tiers, serves the events, and stops cleanly", () =>
    Effect.gen(function*() {
      const { app } = yield* BundledApp
      const database = yield* makeTestDatabase("bundle", { migrate: false })
      const databaseEnv = {
        DATABASE_URL: Redacted.value(database.url),
        DATABASE_MIGRATION_URL: Redacted.value(database.migrationUrl)
      }
      const migrated = yield* runToExit({
        program: program(app, "telegram-gateway"),
        command: ["migrate"],
        env: databaseEnv,
        timeout: "60 seconds"
      })
      assert.strictEqual(migrated.code, 0, migrated.output)
      const sqlFiles = (yield* Effect.promise(() => Fs.readdir(Path.join(repository, "sql")))).filter((file) => file.endsWith(".up.sql"))
      const [applied] = yield* query<{ count: number }>(database, "SELECT count(*)::int AS count FROM schema_migrations")
      assert.strictEqual(applied?.count, sqlFiles.length, "every migration in sql/ is applied")

      const simulator = yield* TelegramSimulator.start()
      const channel = simulator.world.addChannel({ username: "bundle_signals", title: "Bundle", kind: "channel" })
      const sessionFile = yield* makeSessionDirectory
      yield* writeSession(sessionFile, Redacted.make(simulator.sessionString))
      const exchange = uniqueName("bundle.messages")
      const keyPrefix = `${uniqueName("tgbundle")}:`
      const consumer = yield* makeTestConsumer(exchange)
      const gateway = yield* startGatewayProcess({
        program: program(app, "telegram-gateway"),
        env: {
          ...databaseEnv,
          REDIS_KEY_PREFIX: keyPrefix,
          RABBITMQ_EXCHANGE: exchange,
          ...simulatorEnv(simulator, sessionFile, "@bundle_signals")
        }
      })
      // Posts from before the channel's first read are its history, not new messages.
      yield* gateway.waitForLog(/first read, starting at pts/, "90 seconds")
      const posted = Array.from({ length: 5 }, (_, index) => simulator.world.post(channel.id, { text: `bundled ${index}` }))

      const countStored = query<{ count: number }>(database, `SELECT count(*)::int AS count FROM messages WHERE channel_id = ${channel.id}`)
      yield* eventuallyEffect(
        "the five posts in PostgreSQL",
        Effect.map(countStored, ([row]) => row?.count === posted.length || undefined),
        { timeout: "60 seconds", interval: "100 millis" }
      )
      yield* eventually("the five posts on the bus", () => consumer.received.length >= posted.length, "30 seconds")
      const redis = yield* Effect.acquireRelease(
        Effect.sync(() => new Redis("redis://127.0.0.1:6379", { lazyConnect: false })),
        (client) => Effect.promise(() => client.quit()).pipe(Effect.ignore)
      )
      const cached = yield* Effect.promise(() => redis.keys(`${keyPrefix}msg:*`))
      assert.strictEqual(cached.length, posted.length, "each post cached in Redis")
      assert.strictEqual((yield* gateway.get("/health/ready"))?.status, 200)

      const apiPort = yield* freePort
      const apiKey = "bundle-reader-secret"
      const api = yield* startGatewayProcess({
        program: program(app, "telegram-gateway-api"),
        command: [],
        env: {
          ...databaseEnv,
          API_PORT: String(apiPort),
          API_KEYS: `reader:${createHash("sha256").update(apiKey).digest("hex")}:read`,
          REDIS_KEY_PREFIX: keyPrefix,
          RABBITMQ_EXCHANGE: exchange
        }
      })
      const page = yield* eventuallyEffect(
        "the API's page of the channel",
        Effect.promise(() =>
          fetch(`http://127.0.0.1:${apiPort}/api/v1/messages?channelId=${channel.id}`, { headers: { "x-api-key": apiKey } })
            .then(async (response) => response.ok ? await response.json() as { events: Array<{ message?: { text?: string } }> } : undefined, () => undefined)
        ),
        { timeout: "60 seconds", interval: "100 millis" }
      )
      assert.deepStrictEqual(page.events.map((event) => event.message?.text), posted.map((_, index) => `bundled ${index}`))
      api.kill("SIGTERM")
      assert.strictEqual(yield* api.exited, 0, api.output())

      gateway.kill("SIGTERM")
      assert.strictEqual(yield* gateway.exited, 0, gateway.output())
    }).pipe(Effect.scoped), 240_000)

  it.effect("SIGKILLed while posts and edits stream in, then started again: every version once in PostgreSQL and at least once on the bus", () =>
    Effect.gen(function*() {
      const { app } = yield* BundledApp
      const sim = yield* TelegramSimulator.start()
      const news = sim.world.addChannel({ username: "bundle_kill", title: "Bundle kill", kind: "channel" })
      const setup = yield* makeSetup(sim)
      const ledger = new Ledger(sim)
      const exchange = uniqueName("bundlekill.messages")
      const consumer = yield* makeTestConsumer(exchange)
      const start = startGatewayProcess({
        program: program(app, "telegram-gateway"),
        env: {
          DATABASE_URL: Redacted.value(setup.database.url),
          REDIS_KEY_PREFIX: `${uniqueName("tgbundlekill")}:`,
          RABBITMQ_EXCHANGE: exchange,
          ...simulatorEnv(sim, setup.sessionFile, "@bundle_kill"),
          TELEGRAM_STATE_FLUSH_INTERVAL: "200 millis",
          // The restarted process takes the dead one's lease within seconds.
          HA_LEASE_TTL: "3 seconds",
          HA_RENEW_INTERVAL: "1 second"
        }
      })
      const storedVersions = query<{ count: number }>(setup.database, `SELECT count(*)::int AS count FROM messages WHERE channel_id = ${news.id}`).pipe(
        Effect.map(([row]) => row?.count ?? 0)
      )

      const first = yield* start
      yield* first.waitForLog(/first read, starting at pts/, "90 seconds")
      // A post every 10 ms, and every fifth an edit of the post before it, until stopped.
      const producer = yield* Effect.gen(function*() {
        for (let n = 1;; n++) {
          const id = ledger.post(news, `stream ${n}`)
          if (n % 5 === 0) ledger.edit(news, id - 1, `stream ${n - 1}, edited`)
          yield* Effect.sleep("10 millis")
        }
      }).pipe(Effect.forkScoped)
      yield* eventuallyEffect("100 versions committed", Effect.map(storedVersions, (count) => count >= 100 || undefined), {
        timeout: "60 seconds",
        interval: "20 millis"
      })
      first.kill("SIGKILL")
      assert.strictEqual(yield* first.exited, null, "killed, not exited")
      const atKill = yield* storedVersions
      yield* Effect.sleep("1 second") // posts and edits while it is down

      const second = yield* start
      yield* eventuallyEffect("the stream committed past the kill", Effect.map(storedVersions, (count) => count >= atKill + 200 || undefined), {
        timeout: "90 seconds",
        interval: "100 millis"
      })
      yield* Fiber.interrupt(producer)
      yield* awaitExactEquality(setup, ledger, "120 seconds")

      const stored = yield* query<{ key: string }>(
        setup.database,
        `SELECT channel_id || ':' || message_id || ':' || version AS key FROM messages WHERE channel_id = ${news.id}`
      )
      const published = () => new Set(consumer.received.map((message) => String(message.properties.messageId)))
      yield* eventually("every stored version on the bus", () => stored.every((row) => published().has(row.key)), "60 seconds")
      second.kill("SIGTERM")
      assert.strictEqual(yield* second.exited, 0, second.output())
    }).pipe(Effect.scoped), 300_000)
})
