/**
 * The whole-stack scripts (deploy/scripts/start-stack.sh, stop-stack.sh,
 * check-stack.sh), run for real on the ops port range (21000-21999) with
 * their own directories: PgBouncer (in front of the shared PostgreSQL), a
 * Redis master, replica and Sentinel, and the exporters, started, checked,
 * started again (nothing to do), stopped, stopped again. PostgreSQL, Redis
 * and RabbitMQ on their usual ports are shared and never stopped here: the
 * whole stack is checked, and a dry run shows it would leave them alone.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Fs from "node:fs/promises"
import * as Os from "node:os"
import * as Path from "node:path"
import { deployedEnvironment, deployedNodeFlags } from "../../bench/pipeline/Deployed.ts"
import { deployPath, runCommand } from "./Tools.ts"

const script = (name: string) => deployPath("scripts", name)
const scripts = ["start-stack.sh", "stop-stack.sh", "check-stack.sh"]
const sideComponents = "pgbouncer,redis-master,redis-replica,redis-sentinel,postgres-exporter,redis-exporter,node-exporter"

/** A scratch directory the redis and postgres users can enter. */
const scratch = Effect.acquireRelease(
  Effect.promise(async () => {
    const directory = await Fs.mkdtemp(Path.join(Os.tmpdir(), "ops-stack-"))
    await Fs.chmod(directory, 0o755)
    return directory
  }),
  (directory) => Effect.promise(() => Fs.rm(directory, { recursive: true, force: true }))
)

const sideEnv = (directory: string): Record<string, string> => ({
  STACK_ENV: Path.join(directory, "no-stack.env"),
  STACK_RUN_DIR: Path.join(directory, "run"),
  STACK_DATA_DIR: Path.join(directory, "data"),
  STACK_PGBOUNCER_PORT: "21434",
  STACK_REDIS_PORT: "21379",
  STACK_REDIS_REPLICA_PORT: "21380",
  STACK_SENTINEL_PORT: "21381",
  STACK_POSTGRES_EXPORTER_PORT: "21187",
  STACK_REDIS_EXPORTER_PORT: "21121",
  STACK_NODE_EXPORTER_PORT: "21100"
})

const run = (name: string, args: ReadonlyArray<string>, env: Record<string, string> = {}) =>
  runCommand("bash", [script(name), ...args], { env })

describe("whole-stack scripts", () => {
  it.effect("are valid bash with --help, and refuse an unknown component", () =>
    Effect.gen(function*() {
      for (const name of [...scripts, "stack-services.sh"]) {
        const syntax = yield* runCommand("bash", ["-n", script(name)])
        assert.strictEqual(syntax.code, 0, `${name}: ${syntax.stderr}`)
      }
      for (const name of scripts) {
        const help = yield* run(name, ["--help"])
        assert.strictEqual(help.code, 0, help.stderr)
        assert.include(help.stdout, `${name} [--only a,b,...]`)
        const unknown = yield* run(name, ["--only", "mongodb"])
        assert.strictEqual(unknown.code, 2)
        assert.include(unknown.stderr, "unknown component: mongodb")
      }
    }))

  it.effect("start, check, start again, stop, stop again: PgBouncer, Redis with Sentinel and the exporters", () =>
    Effect.gen(function*() {
      const env = sideEnv(yield* scratch)
      // Whatever happens below, nothing started here outlives the test.
      yield* Effect.addFinalizer(() => run("stop-stack.sh", ["--only", sideComponents], env).pipe(Effect.asVoid))

      const started = yield* run("start-stack.sh", ["--only", sideComponents, "--timeout", "60"], env)
      assert.strictEqual(started.code, 0, started.stderr)
      const check = yield* run("check-stack.sh", ["--only", sideComponents], env)
      assert.strictEqual(check.code, 0, check.stdout)
      assert.strictEqual(check.stdout.trim().split("\n").filter((line) => / up {4}127\.0\.0\.1:21\d{3}$/.test(line)).length, 7, check.stdout)

      const replica = yield* runCommand("redis-cli", ["-p", "21380", "info", "replication"])
      assert.include(replica.stdout, "role:slave")
      assert.include(replica.stdout, "master_port:21379")
      const sentinel = yield* runCommand("redis-cli", ["-p", "21381", "sentinel", "get-master-addr-by-name", "telegram-gateway"])
      assert.deepStrictEqual(sentinel.stdout.trim().split("\n"), ["127.0.0.1", "21379"])
      const pools = yield* runCommand("curl", ["-fs", "http://127.0.0.1:21121/metrics"])
      assert.include(pools.stdout, "redis_up 1")

      const again = yield* run("start-stack.sh", ["--only", sideComponents], env)
      assert.strictEqual(again.code, 0, again.stderr)
      assert.notInclude(again.stderr, "starting")
      assert.strictEqual(again.stderr.match(/already up/g)?.length, 7)

      const stopped = yield* run("stop-stack.sh", ["--only", sideComponents], env)
      assert.strictEqual(stopped.code, 0, stopped.stderr)
      const down = yield* run("check-stack.sh", ["--only", sideComponents], env)
      assert.strictEqual(down.code, 1)
      assert.strictEqual(down.stdout.match(/ down /g)?.length, 7, down.stdout)
      const stoppedAgain = yield* run("stop-stack.sh", ["--only", sideComponents], env)
      assert.strictEqual(stoppedAgain.code, 0, stoppedAgain.stderr)
      assert.strictEqual(stoppedAgain.stderr.match(/already down/g)?.length, 7)
      assert.strictEqual(stoppedAgain.stdout, "", "nothing left to signal")
    }), { timeout: 180_000 })

  it.effect("without systemd, the gateway starts as its unit runs it: its user, environment, environment files and node flags", () =>
    Effect.gen(function*() {
      const directory = yield* scratch
      const unitFile = deployPath("systemd", "telegram-gateway.service")
      const project = yield* Effect.promise(() => Fs.readFile(unitFile, "utf8"))
      const execStart = project.split("\n").find((line) => line.startsWith("ExecStart="))!.split(/\s+/)
      const deployed = deployedEnvironment(unitFile, { heapCap: true })
      const report = Path.join(directory, "started.json")
      const port = "21407"
      yield* Effect.promise(async () => {
        // The app directory of install.sh's layout, holding this Node and an app that reports how it was started.
        await Fs.mkdir(Path.join(directory, "app", "node", "bin"), { recursive: true })
        await Fs.mkdir(Path.join(directory, "app", "dist", "bin"), { recursive: true })
        await Fs.symlink(process.execPath, Path.join(directory, "app", "node", "bin", "node"))
        await Fs.writeFile(
          Path.join(directory, "app", "dist", "bin", "telegram-gateway.js"),
          `const env = process.env
require("node:fs").writeFileSync(env.REPORT, JSON.stringify({
  execArgv: process.execArgv, args: process.argv.slice(2), cwd: process.cwd(), user: require("node:os").userInfo().username,
  NODE_OPTIONS: env.NODE_OPTIONS, MALLOC_ARENA_MAX: env.MALLOC_ARENA_MAX, NODE_ENV: env.NODE_ENV, LOG_FORMAT: env.LOG_FORMAT, SHARED: env.SHARED
}))
// Answers every request, /health/live (the stack's up check) among them.
require("node:http").createServer((request, response) => response.end("ok")).listen(Number(env.PORT), "127.0.0.1")
`
        )
        // The project's unit, with this test's user and environment files (a missing optional one among them).
        await Fs.mkdir(Path.join(directory, "units"))
        await Fs.writeFile(
          Path.join(directory, "units", "telegram-gateway.service"),
          project.replace(/^User=.*$/m, `User=${Os.userInfo().username}`).replace(
            /^EnvironmentFile=.*$/m,
            [`EnvironmentFile=${directory}/first.env`, `EnvironmentFile=-${directory}/missing.env`, `EnvironmentFile=-${directory}/second.env`].join("\n")
          )
        )
        await Fs.writeFile(Path.join(directory, "first.env"), `REPORT=${report}\nPORT=${port}\nSHARED=first\nLOG_FORMAT=pretty\n`)
        await Fs.writeFile(Path.join(directory, "second.env"), "SHARED=second\n")
      })
      const env = {
        STACK_ENV: Path.join(directory, "no-stack.env"),
        STACK_RUN_DIR: Path.join(directory, "run"),
        STACK_APP_DIR: Path.join(directory, "app"),
        STACK_UNIT_DIR: Path.join(directory, "units"),
        STACK_GATEWAY_PORT: port
      }
      yield* Effect.addFinalizer(() => run("stop-stack.sh", ["--only", "gateway"], env).pipe(Effect.asVoid))

      const started = yield* run("start-stack.sh", ["--only", "gateway", "--timeout", "20"], env)
      assert.strictEqual(started.code, 0, started.stderr)
      const seen = JSON.parse(yield* Effect.promise(() => Fs.readFile(report, "utf8")))
      assert.deepStrictEqual(seen, {
        execArgv: deployedNodeFlags(unitFile),
        args: execStart.slice(execStart.findIndex((word) => word.endsWith(".js")) + 1),
        cwd: Path.join(directory, "app"),
        user: Os.userInfo().username,
        NODE_OPTIONS: deployed.NODE_OPTIONS,
        MALLOC_ARENA_MAX: deployed.MALLOC_ARENA_MAX,
        NODE_ENV: "production",
        // An environment file overrides the unit's Environment=, and a later file an earlier one, as under systemd.
        LOG_FORMAT: "pretty",
        SHARED: "second"
      })
      assert.include(seen.execArgv, "--heap-growing-percent=50")

      const stopped = yield* run("stop-stack.sh", ["--only", "gateway"], env)
      assert.strictEqual(stopped.code, 0, stopped.stderr)
      const down = yield* run("check-stack.sh", ["--only", "gateway"], env)
      assert.strictEqual(down.code, 1, down.stdout)
    }), { timeout: 60_000 })

  it.effect("the whole stack: checked component by component, and a start would leave the running services alone", () =>
    Effect.gen(function*() {
      const env = { STACK_ENV: "/nonexistent/stack.env" }
      const check = yield* run("check-stack.sh", [], env)
      const lines = check.stdout.trim().split("\n")
      assert.deepStrictEqual(lines.map((line) => line.split(/\s+/)[0]), [
        "postgresql", "pgbouncer", "redis-master", "redis-replica", "redis-sentinel", "rabbitmq",
        "postgres-exporter", "redis-exporter", "node-exporter", "gateway", "api"
      ])
      // The shared services of this machine (.ci/run starts them).
      for (const name of ["postgresql", "pgbouncer", "redis-master", "rabbitmq"]) {
        assert.match(lines.find((line) => line.startsWith(`${name} `)) ?? "", / up /, name)
      }
      const dryRun = yield* run("start-stack.sh", ["--dry-run"], env)
      assert.strictEqual(dryRun.code, 0, dryRun.stderr)
      for (const [name, port] of [["postgresql", 5432], ["pgbouncer", 6434], ["redis-master", 6379], ["rabbitmq", 5672]] as const) {
        assert.include(dryRun.stderr, `${name} already up on ${port}`)
      }
      assert.notInclude(dryRun.stdout, "pg_ctlcluster")
      assert.notInclude(dryRun.stdout, "rabbitmq-server")
      const keep = yield* run("stop-stack.sh", ["--dry-run", "--keep-data", "--only", "postgresql,rabbitmq,redis-master"], env)
      assert.strictEqual(keep.code, 0, keep.stderr)
      assert.strictEqual(keep.stdout, "")
      assert.strictEqual(keep.stderr.match(/left running \(--keep-data\)/g)?.length, 3)
    }))
})
