/**
 * Private instances of the real services, on spare ports, for tests that stop,
 * kill or restart them: the machine's shared PostgreSQL, PgBouncer, Redis and
 * RabbitMQ are never touched. Each is scoped: the process is stopped and its
 * files removed when the scope closes, whatever state the test left it in.
 *
 * The ports are the durable-path range (17000-17999); suites run one at a time.
 */
import { Effect } from "effect"
import { type ChildProcess, execFile, spawn } from "node:child_process"
import { chmod, chown, mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { promisify } from "node:util"

const run = promisify(execFile)
const postgresBin = "/usr/lib/postgresql/15/bin"

/** Runs a command, as another user when given; fails with its output. */
const exec = (command: string, args: ReadonlyArray<string>, user?: string) =>
  Effect.tryPromise({
    try: () => user === undefined ? run(command, [...args]) : run("runuser", ["-u", user, "--", command, ...args]),
    catch: (cause) => new Error(`${command} ${args.join(" ")} failed: ${(cause as { stderr?: string }).stderr ?? cause}`)
  }).pipe(Effect.orDie)

const ownedTempDirectory = (prefix: string, owner: string) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const directory = await mkdtemp(join(tmpdir(), prefix))
      const { stdout } = await run("id", ["-u", owner])
      const { stdout: gid } = await run("id", ["-g", owner])
      await chown(directory, Number(stdout.trim()), Number(gid.trim()))
      await chmod(directory, 0o700)
      return directory
    }),
    (directory) => Effect.promise(() => rm(directory, { recursive: true, force: true }))
  )

/** Waits until `check` succeeds, failing after `attempts` tries. */
const waitFor = (what: string, check: Effect.Effect<boolean>, attempts = 100) =>
  Effect.gen(function*() {
    for (let attempt = 0; attempt < attempts; attempt++) {
      if (yield* check) return
      yield* Effect.sleep("100 millis")
    }
    return yield* Effect.die(new Error(`${what} did not come up`))
  })

export interface SidePostgres {
  readonly port: number
  /** `pg_ctl stop -m fast`: sessions are ended, the server goes down. */
  readonly stop: Effect.Effect<void>
  readonly start: Effect.Effect<void>
}

/** A PostgreSQL 15 cluster of its own (trust auth) with the gateway's owner role. */
export const sidePostgres = (port: number) =>
  Effect.gen(function*() {
    const directory = yield* ownedTempDirectory("tg-side-pg-", "postgres")
    const data = join(directory, "data")
    yield* exec(`${postgresBin}/initdb`, ["-D", data, "--auth=trust", "-U", "postgres", "-E", "UTF8", "--no-sync"], "postgres")
    const options = `-p ${port} -k ${directory} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200`
    const start = exec(`${postgresBin}/pg_ctl`, ["-D", data, "-l", join(directory, "log"), "-o", options, "-w", "start"], "postgres")
      .pipe(Effect.asVoid)
    const stop = exec(`${postgresBin}/pg_ctl`, ["-D", data, "-m", "fast", "-w", "stop"], "postgres").pipe(Effect.asVoid)
    yield* Effect.acquireRelease(start, () =>
      exec(`${postgresBin}/pg_ctl`, ["-D", data, "-m", "immediate", "-w", "stop"], "postgres").pipe(
        Effect.ignore
      ))
    yield* exec("psql", [
      "-h",
      "127.0.0.1",
      "-p",
      String(port),
      "-U",
      "postgres",
      "-c",
      "CREATE ROLE telegram_gateway LOGIN CREATEDB PASSWORD 'telegram_gateway'"
    ])
    return { port, stop, start } satisfies SidePostgres
  })

export interface SideProcess {
  readonly port: number
  /** Kills the process with SIGKILL, as a crash would. */
  readonly kill: Effect.Effect<void>
  /** Starts it again on the same port. */
  readonly start: Effect.Effect<void>
}

/** PgBouncer in transaction mode in front of `postgresPort`, trusting the gateway's role. */
export const sidePgBouncer = (port: number, postgresPort: number) =>
  Effect.gen(function*() {
    const directory = yield* ownedTempDirectory("tg-side-pgbouncer-", "postgres")
    const ini = join(directory, "pgbouncer.ini")
    const pidfile = join(directory, "pgbouncer.pid")
    yield* Effect.promise(async () => {
      await writeFile(join(directory, "userlist.txt"), `"telegram_gateway" ""\n"postgres" ""\n`)
      await writeFile(
        ini,
        [
          "[databases]",
          `* = host=127.0.0.1 port=${postgresPort}`,
          "[pgbouncer]",
          "listen_addr = 127.0.0.1",
          `listen_port = ${port}`,
          `unix_socket_dir = ${directory}`,
          `pidfile = ${pidfile}`,
          `logfile = ${join(directory, "pgbouncer.log")}`,
          "auth_type = trust",
          `auth_file = ${join(directory, "userlist.txt")}`,
          "pool_mode = transaction",
          "default_pool_size = 20",
          "server_connect_timeout = 2",
          "server_login_retry = 1",
          "query_wait_timeout = 30",
          "ignore_startup_parameters = extra_float_digits",
          ""
        ].join("\n")
      )
      await run("chown", ["-R", "postgres:postgres", directory])
    })
    const pid = Effect.tryPromise(() => run("cat", [pidfile])).pipe(
      Effect.map(({ stdout }) => Number(stdout.trim())),
      Effect.orElseSucceed(() => undefined)
    )
    const listening = Effect.tryPromise(() => run("pg_isready", ["-q", "-h", "127.0.0.1", "-p", String(port)])).pipe(
      Effect.as(true),
      Effect.orElseSucceed(() => false)
    )
    const start = exec("pgbouncer", ["-d", ini], "postgres").pipe(
      Effect.andThen(waitFor(`PgBouncer on ${port}`, listening))
    )
    const kill = Effect.gen(function*() {
      const current = yield* pid
      if (current !== undefined) {
        yield* Effect.sync(() => process.kill(current, "SIGKILL")).pipe(Effect.ignore)
        yield* Effect.promise(() => rm(pidfile, { force: true }))
      }
    })
    yield* Effect.acquireRelease(start, () => kill)
    return { port, kill, start } satisfies SideProcess
  })

/** A Redis server that keeps nothing on disk, as the shared one. */
export const sideRedis = (port: number) =>
  Effect.gen(function*() {
    let child: ChildProcess | undefined
    const start = Effect.gen(function*() {
      child = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
        stdio: "ignore"
      })
      yield* waitFor(
        `Redis on ${port}`,
        Effect.tryPromise(() => run("redis-cli", ["-p", String(port), "ping"])).pipe(
          Effect.map(({ stdout }) => stdout.trim() === "PONG"),
          Effect.orElseSucceed(() => false)
        )
      )
    })
    const kill = Effect.promise(() =>
      new Promise<void>((resolve) => {
        if (child === undefined || child.exitCode !== null || child.signalCode !== null) return resolve()
        child.once("exit", () => resolve())
        child.kill("SIGKILL")
      })
    )
    yield* Effect.acquireRelease(start, () => kill)
    return { port, kill, start } satisfies SideProcess
  })

export interface SideRabbitMq {
  readonly port: number
  /** `rabbitmqctl stop_app`: the broker closes every connection and stops listening. */
  readonly stopApp: Effect.Effect<void>
  readonly startApp: Effect.Effect<void>
}

/** A second RabbitMQ node with its own name, ports, data and (empty) plugin list. */
export const sideRabbitMq = (port: number) =>
  Effect.gen(function*() {
    const node = `tgside${port}@localhost`
    const directory = yield* ownedTempDirectory("tg-side-rabbitmq-", "rabbitmq")
    yield* Effect.promise(async () => {
      await writeFile(join(directory, "rabbitmq.conf"), `listeners.tcp.1 = 127.0.0.1:${port}\nloopback_users = none\n`)
      await writeFile(join(directory, "enabled_plugins"), "[].\n")
      await run("chown", ["-R", "rabbitmq:rabbitmq", directory])
    })
    const environment = [
      "HOME=/var/lib/rabbitmq",
      `RABBITMQ_NODENAME=${node}`,
      `RABBITMQ_DIST_PORT=${port + 1}`,
      `RABBITMQ_CONFIG_FILE=${join(directory, "rabbitmq")}`,
      `RABBITMQ_MNESIA_BASE=${join(directory, "mnesia")}`,
      `RABBITMQ_LOG_BASE=${join(directory, "log")}`,
      `RABBITMQ_ENABLED_PLUGINS_FILE=${join(directory, "enabled_plugins")}`,
      `RABBITMQ_PID_FILE=${join(directory, "pid")}`
    ]
    const ctl = (...args: ReadonlyArray<string>) =>
      exec("env", [...environment, "/usr/lib/rabbitmq/bin/rabbitmqctl", "-n", node, "-q", ...args], "rabbitmq")
    const awaitStartup = waitFor(
      `RabbitMQ node ${node}`,
      ctl("await_startup", "--timeout", "5").pipe(Effect.as(true), Effect.catchDefect(() => Effect.succeed(false))),
      60
    )
    yield* Effect.acquireRelease(
      exec("env", [...environment, "/usr/lib/rabbitmq/bin/rabbitmq-server", "-detached"], "rabbitmq").pipe(
        Effect.andThen(awaitStartup)
      ),
      () => ctl("stop").pipe(Effect.ignore)
    )
    return {
      port,
      stopApp: ctl("stop_app").pipe(Effect.asVoid),
      startApp: ctl("start_app").pipe(Effect.asVoid)
    } satisfies SideRabbitMq
  })
