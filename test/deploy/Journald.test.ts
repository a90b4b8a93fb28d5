/**
 * The gateway's logs as journald files them, with a real journald: Debian's
 * `systemd-journald` runs in its own namespace (its own sockets under
 * /run/systemd/journal.NS, its own files), the test connects to its stdout
 * socket and sends the header systemd sends for a unit with
 * `StandardOutput=journal`, `SyslogIdentifier=telegram-gateway` and the default
 * `SyslogLevelPrefix=yes`, and hands that socket to `telegram-gateway run` as
 * stdout and stderr with `JOURNAL_STREAM` set, exactly as systemd would.
 * The daemon warns about an over-open session file, then fails on its content
 * (exit 65): `journalctl -p warning` must return exactly those lines.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Redacted, Schedule } from "effect"
import { spawn } from "node:child_process"
import { randomBytes } from "node:crypto"
import * as Fs from "node:fs"
import * as FsPromises from "node:fs/promises"
import * as Net from "node:net"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { syslogPriority } from "../../src/layers/Logging.ts"
import { makeTestDatabase } from "../support/Database.ts"
import { uniqueName } from "../support/TestGateway.ts"
import { makeSessionDirectory } from "../telegram/Harness.ts"
import { runCommand } from "./Tools.ts"

const bin = fileURLToPath(new URL("../../src/bin/telegram-gateway.ts", import.meta.url))
const journald = ["/usr/lib/systemd/systemd-journald", "/lib/systemd/systemd-journald"].find((path) => Fs.existsSync(path))

interface Entry {
  readonly PRIORITY: string
  readonly MESSAGE: string
  readonly SYSLOG_IDENTIFIER: string
}

/** A journald of its own, in namespace `ns`; stopped and its files removed with the scope. */
const startJournald = (namespace: string) =>
  Effect.gen(function*() {
    assert.isDefined(journald, "systemd-journald is not installed (Debian package systemd)")
    const machineId = (yield* Effect.promise(() => FsPromises.readFile("/etc/machine-id", "utf8"))).trim()
    const socketDirectory = `/run/systemd/journal.${namespace}`
    yield* Effect.acquireRelease(
      Effect.sync(() => spawn(journald!, [namespace], { stdio: "ignore" })),
      (child) =>
        Effect.promise(async () => {
          if (child.exitCode === null) {
            const exited = new Promise((resolve) => child.once("exit", resolve))
            child.kill("SIGTERM")
            await exited
          }
          for (const directory of [socketDirectory, `/var/log/journal/${machineId}.${namespace}`, `/run/log/journal/${machineId}.${namespace}`]) {
            await FsPromises.rm(directory, { recursive: true, force: true })
          }
        })
    )
    const stdoutSocket = Path.join(socketDirectory, "stdout")
    yield* Effect.sync(() => Fs.existsSync(stdoutSocket)).pipe(
      Effect.repeat({ until: (exists) => exists, schedule: Schedule.spaced("50 millis") }),
      Effect.timeout("10 seconds")
    )
    return stdoutSocket
  })

/** A stream connected as systemd connects a unit's stdout (src/core/execute.c in systemd: connect_logger_as). */
const connectAsUnit = (stdoutSocket: string) =>
  Effect.acquireRelease(
    Effect.callback<Net.Socket>((resume) => {
      const socket = Net.connect(stdoutSocket, () => {
        // identifier, unit, SyslogLevel (info), SyslogLevelPrefix, then no forwarding to syslog, kmsg, console.
        socket.write("telegram-gateway\ntelegram-gateway.service\n6\n1\n0\n0\n0\n", () => resume(Effect.succeed(socket)))
      })
      socket.once("error", (error) => resume(Effect.die(error)))
    }),
    (socket) => Effect.sync(() => socket.destroy())
  )

/** The stream's `device:inode`, as systemd puts it in JOURNAL_STREAM. */
const journalStream = (socket: Net.Socket) => {
  const fd = (socket as unknown as { _handle: { fd: number } })._handle.fd
  const stat = Fs.fstatSync(fd, { bigint: true })
  return `${stat.dev}:${stat.ino}`
}

const runDaemon = (socket: Net.Socket, env: Record<string, string>) =>
  Effect.callback<number | null>((resume) => {
    const child = spawn(process.execPath, ["--import", "tsx", bin, "run"], {
      env: { ...process.env, JOURNAL_STREAM: journalStream(socket), ...env },
      stdio: ["ignore", socket, socket]
    })
    const timer = setTimeout(() => child.kill("SIGKILL"), 60_000)
    child.on("exit", (code) => {
      clearTimeout(timer)
      resume(Effect.succeed(code))
    })
  })

const journalctl = (namespace: string, args: ReadonlyArray<string>) =>
  runCommand("journalctl", [`--namespace=${namespace}`, "--no-pager", "-t", "telegram-gateway", ...args])

const readEntries = (namespace: string) =>
  journalctl(namespace, ["-o", "json"]).pipe(
    Effect.map((result) =>
      result.stdout.split("\n").filter((line) => line.trim() !== "").map((line) => JSON.parse(line) as Entry)
    )
  )

describe("logs under journald", () => {
  it.live("carry their priority, are one JSON object each, and -p warning returns exactly the warnings and errors", () =>
    Effect.gen(function*() {
      const namespace = `tgw-test-${randomBytes(4).toString("hex")}`
      const stdoutSocket = yield* startJournald(namespace)
      const database = yield* makeTestDatabase("journald")
      const sessionFile = yield* makeSessionDirectory
      yield* Effect.promise(async () => {
        await FsPromises.mkdir(Path.dirname(sessionFile), { recursive: true, mode: 0o700 })
        await FsPromises.writeFile(sessionFile, "not a session\n", { mode: 0o644 })
        await FsPromises.chmod(sessionFile, 0o644)
      })
      const socket = yield* connectAsUnit(stdoutSocket)
      const code = yield* runDaemon(socket, {
        LOG_LEVEL: "debug",
        HTTP_PORT: "21007",
        DATABASE_URL: Redacted.value(database.url),
        REDIS_KEY_PREFIX: `${uniqueName("tgjournal")}:`,
        RABBITMQ_EXCHANGE: uniqueName("journald.messages"),
        TELEGRAM_API_ID: "1",
        TELEGRAM_API_HASH: "test",
        TELEGRAM_CHANNELS: "@journald_test",
        TELEGRAM_SESSION_FILE: sessionFile
      })
      assert.strictEqual(code, 65, "a corrupt session file exits 65")
      socket.end()

      // journald has read the stream to its end once the fatal line is filed.
      const entries = yield* readEntries(namespace).pipe(
        Effect.repeat({
          until: (entries) => entries.some((entry) => entry.MESSAGE.includes("\"level\":\"ERROR\"")),
          schedule: Schedule.spaced("100 millis")
        }),
        Effect.timeout("15 seconds")
      )
      const levels = new Set<string>()
      for (const entry of entries) {
        assert.notMatch(entry.MESSAGE, /^</, "journald took the priority prefix off")
        let parsed: { level?: string } = {}
        assert.doesNotThrow(() => parsed = JSON.parse(entry.MESSAGE), entry.MESSAGE)
        const level = parsed.level!
        levels.add(level)
        const effectLevel = ({ DEBUG: "Debug", INFO: "Info", WARN: "Warn", ERROR: "Error", FATAL: "Fatal" } as const)[
          level as "INFO"
        ]
        assert.strictEqual(Number(entry.PRIORITY), syslogPriority(effectLevel), entry.MESSAGE)
      }
      assert.includeMembers([...levels], ["INFO", "WARN", "ERROR"])

      const fatal = entries.map((entry) => JSON.parse(entry.MESSAGE)).filter((line) => line.level === "ERROR")
      assert.strictEqual(fatal.length, 1, "the fatal error is one entry")
      assert.match(fatal[0].message, /corrupt/)
      assert.strictEqual(fatal[0].annotations.exitCode, 65)

      const filtered = yield* journalctl(namespace, ["-p", "warning", "-o", "cat"])
      assert.strictEqual(filtered.code, 0, filtered.stderr)
      const warnings = filtered.stdout.split("\n").filter((line) => line !== "").map((line) => JSON.parse(line).level)
      assert.deepStrictEqual(
        warnings,
        entries.map((entry) => JSON.parse(entry.MESSAGE).level).filter((level) => level === "WARN" || level === "ERROR")
      )
      assert.include(filtered.stdout, "wider than 0600")
    }).pipe(Effect.scoped), 90_000)
})
