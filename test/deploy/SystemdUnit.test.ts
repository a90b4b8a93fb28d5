/**
 * deploy/systemd/telegram-gateway.service and telegram-gateway-api.service:
 * valid for systemd, hardened, and in step with the code they run (exit codes,
 * shutdown drain, long polls, session path).
 */
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Duration, Effect } from "effect"
import * as Fs from "node:fs/promises"
import * as Os from "node:os"
import * as Path from "node:path"
import { deployedEnvironment, deployedNodeFlags } from "../../bench/pipeline/Deployed.ts"
import { ExitCode } from "../../src/services/ExitCodes.ts"
import { ApiConfig } from "../../src/services/ApiConfig.ts"
import { IngestConfig, TelegramConfig } from "../../src/services/GatewayConfig.ts"
import { deployPath, runCommand } from "./Tools.ts"

const unitFile = deployPath("systemd", "telegram-gateway.service")
const apiUnitFile = deployPath("systemd", "telegram-gateway-api.service")

/** Every `Key=value` of a unit, by key, in order (a key may repeat). */
const readUnitFile = (file: string) => Effect.promise(() => Fs.readFile(file, "utf8")).pipe(
  Effect.map((text) => {
    const entries = new Map<string, Array<string>>()
    for (const line of text.split("\n")) {
      const match = /^([A-Za-z]+)=(.*)$/.exec(line)
      if (match === null) continue
      entries.set(match[1]!, [...(entries.get(match[1]!) ?? []), match[2]!])
    }
    return entries
  })
)
const readUnit = readUnitFile(unitFile)

/**
 * `systemd-analyze verify` on a copy of the unit whose ExecStart runs the
 * node running this suite: verify insists that the command exists on this
 * host, and /opt/telegram-gateway/node is where install.sh puts the runtime
 * on the target host (test/deploy/Runtime.test.ts), not here.
 */
const verify = (file: string) =>
  Effect.gen(function*() {
    const directory = yield* Effect.acquireRelease(
      Effect.promise(() => Fs.mkdtemp(Path.join(Os.tmpdir(), "unit-verify-"))),
      (path) => Effect.promise(() => Fs.rm(path, { recursive: true, force: true }))
    )
    const copy = Path.join(directory, Path.basename(file))
    const text = yield* Effect.promise(() => Fs.readFile(file, "utf8"))
    yield* Effect.promise(() => Fs.writeFile(copy, text.replaceAll("/opt/telegram-gateway/node/bin/node", process.execPath)))
    return yield* runCommand("systemd-analyze", ["verify", copy])
  })

/** `systemd-analyze security --offline=true` exposure score of a unit file. */
const exposure = (file: string) =>
  Effect.gen(function*() {
    const result = yield* runCommand("systemd-analyze", ["security", "--offline=true", "--no-pager", file])
    const score = /Overall exposure level for [\w.-]+\.service: ([\d.]+)/.exec(result.stdout)
    assert.isNotNull(score, result.stdout + result.stderr)
    return Number(score![1])
  })

const single = (unit: Map<string, Array<string>>, key: string): string => {
  const values = unit.get(key)
  assert.isDefined(values, `${key}= is missing`)
  return values![values!.length - 1]!
}

const seconds = (value: string): number => {
  const match = /^(\d+)(s|min)?$/.exec(value)
  assert.isNotNull(match, `not a systemd time span: ${value}`)
  return Number(match![1]) * (match![2] === "min" ? 60 : 1)
}

const defaults = <A, E>(config: { readonly parse: (provider: ConfigProvider.ConfigProvider) => Effect.Effect<A, E> }) =>
  config.parse(ConfigProvider.fromUnknown({}))

describe("the systemd unit", () => {
  it.effect("passes systemd-analyze verify", () =>
    Effect.gen(function*() {
      const result = yield* verify(unitFile)
      assert.strictEqual(result.code, 0, result.stderr)
      assert.notInclude(result.stderr, "telegram-gateway.service:", result.stderr)
    }))

  it.effect("has an exposure score of at most 1.5 in systemd-analyze security", () =>
    Effect.gen(function*() {
      assert.isAtMost(yield* exposure(unitFile), 1.5)
    }))

  it.effect("runs the built daemon as its own user, restarting on failure within the spec's limits", () =>
    Effect.gen(function*() {
      const unit = yield* readUnit
      const expected: Record<string, string> = {
        Type: "simple",
        User: "telegram-gateway",
        Group: "telegram-gateway",
        WorkingDirectory: "/opt/telegram-gateway",
        ExecStart: "/opt/telegram-gateway/node/bin/node --heap-growing-percent=50 /opt/telegram-gateway/dist/bin/telegram-gateway.js run",
        EnvironmentFile: "-/etc/telegram-gateway/gateway.env",
        Restart: "on-failure",
        RestartSec: "10s",
        StartLimitBurst: "5",
        StartLimitIntervalSec: "60s",
        SyslogIdentifier: "telegram-gateway",
        KillSignal: "SIGTERM",
        NoNewPrivileges: "yes",
        ProtectSystem: "strict",
        ProtectHome: "yes",
        PrivateTmp: "yes",
        PrivateDevices: "yes",
        ProtectKernelTunables: "yes",
        ProtectKernelModules: "yes",
        ProtectKernelLogs: "yes",
        ProtectControlGroups: "yes",
        RestrictAddressFamilies: "AF_INET AF_INET6 AF_UNIX",
        RestrictNamespaces: "yes",
        LockPersonality: "yes",
        MemoryDenyWriteExecute: "no",
        CapabilityBoundingSet: "",
        UMask: "0077"
      }
      for (const [key, value] of Object.entries(expected)) assert.strictEqual(single(unit, key), value, key)
      assert.include(unit.get("SystemCallFilter") ?? [], "@system-service")
      assert.match(single(unit, "MemoryMax"), /^\d+M$/)
    }))

  it.effect("starts Node with memory settings it accepts from the environment", () =>
    Effect.gen(function*() {
      const unit = yield* readUnit
      const environment = Object.fromEntries(
        (unit.get("Environment") ?? []).map((entry) => {
          const unquoted = entry.replace(/^"(.*)"$/, "$1")
          return [unquoted.slice(0, unquoted.indexOf("=")), unquoted.slice(unquoted.indexOf("=") + 1)]
        })
      )
      assert.include(environment["NODE_OPTIONS"], "--max-semi-space-size=")
      assert.match(environment["MALLOC_ARENA_MAX"] ?? "", /^[1-9]\d*$/)
      // Node refuses most V8 flags in NODE_OPTIONS ("is not allowed in NODE_OPTIONS", exit 9).
      const result = yield* runCommand(process.execPath, ["-e", "0"], { env: { NODE_OPTIONS: environment["NODE_OPTIONS"]! } })
      assert.strictEqual(result.code, 0, result.stderr)
      assert.strictEqual(result.stderr, "")
    }))

  it.effect("gives node a heap growing factor it accepts", () =>
    Effect.gen(function*() {
      const flags = deployedNodeFlags(unitFile)
      assert.deepStrictEqual(flags, ["--heap-growing-percent=50"])
      const result = yield* runCommand(process.execPath, [...flags, "-e", "0"])
      assert.strictEqual(result.code, 0, result.stderr)
      assert.strictEqual(result.stderr, "")
      // What a misspelt flag would do to the daemon: node refuses to start.
      const misspelt = yield* runCommand(process.execPath, ["--heap-growing-percnt=50", "-e", "0"])
      assert.strictEqual(misspelt.code, 9)
      assert.include(misspelt.stderr, "bad option")
    }))

  it.effect("the benches start the daemon and the API with their units' Node settings, the daemon without its heap cap", () =>
    Effect.sync(() => {
      const daemonUnit = deployPath("systemd", "telegram-gateway.service")
      const daemon = deployedEnvironment(daemonUnit)
      assert.include(daemon["NODE_OPTIONS"], "--max-semi-space-size=")
      assert.notInclude(daemon["NODE_OPTIONS"], "--max-old-space-size", "issue 14's memory goal is for an uncapped heap")
      assert.match(daemon["MALLOC_ARENA_MAX"] ?? "", /^[1-9]\d*$/)
      assert.include(deployedEnvironment(daemonUnit, { heapCap: true })["NODE_OPTIONS"], "--max-old-space-size=")
      const api = deployedEnvironment(deployPath("systemd", "telegram-gateway-api.service"), { heapCap: true })
      assert.deepStrictEqual(Object.keys(api), ["NODE_OPTIONS"])
      assert.match(api["NODE_OPTIONS"] ?? "", /^--max-old-space-size=\d+$/)
    }))

  it.effect("does not restart on an exit code that restarting cannot fix", () =>
    Effect.gen(function*() {
      const unit = yield* readUnit
      const prevented = single(unit, "RestartPreventExitStatus").split(/\s+/).map(Number).sort((a, b) => a - b)
      const permanent = Object.entries(ExitCode)
        // 75 (uncommitted at shutdown) is temporary: a restart reads those events again.
        // The backfill command's codes are its own: the daemon never exits with them.
        .filter(([name]) => name !== "ok" && name !== "failure" && name !== "uncommittedAtShutdown" && !name.startsWith("backfill"))
        .map(([, code]) => code)
        .sort((a, b) => a - b)
      assert.deepStrictEqual(prevented, permanent)
    }))

  it.effect("waits longer than the ingest drain before killing the daemon", () =>
    Effect.gen(function*() {
      const unit = yield* readUnit
      const ingest = yield* defaults(IngestConfig)
      assert.isAbove(seconds(single(unit, "TimeoutStopSec")), Duration.toSeconds(ingest.shutdownTimeout) + 5)
    }))

  it.effect("lets the daemon write only the directory of its default session file", () =>
    Effect.gen(function*() {
      const unit = yield* readUnit
      const telegram = yield* defaults(TelegramConfig)
      assert.deepStrictEqual(unit.get("ReadWritePaths"), [Path.dirname(telegram.sessionFile)])
    }))
})

describe("the API's systemd unit", () => {
  it.effect("passes systemd-analyze verify", () =>
    Effect.gen(function*() {
      const result = yield* verify(apiUnitFile)
      assert.strictEqual(result.code, 0, result.stderr)
      assert.notInclude(result.stderr, "telegram-gateway-api.service:", result.stderr)
    }))

  it.effect("is hardened at least as well as the daemon's (exposure at most 1.5)", () =>
    Effect.gen(function*() {
      const api = yield* exposure(apiUnitFile)
      assert.isAtMost(api, 1.5)
      assert.isAtMost(api, yield* exposure(unitFile))
    }))

  it.effect("restarts on failure within limits, never on invalid configuration, under a memory limit", () =>
    Effect.gen(function*() {
      const unit = yield* readUnitFile(apiUnitFile)
      const expected: Record<string, string> = {
        Type: "simple",
        User: "telegram-gateway",
        ExecStart: "/opt/telegram-gateway/node/bin/node /opt/telegram-gateway/dist/bin/telegram-gateway-api.js",
        Restart: "on-failure",
        StartLimitBurst: "5",
        StartLimitIntervalSec: "60s",
        RestartPreventExitStatus: String(ExitCode.config),
        SyslogIdentifier: "telegram-gateway-api",
        SyslogLevelPrefix: "yes",
        KillSignal: "SIGTERM",
        NoNewPrivileges: "yes",
        ProtectSystem: "strict",
        CapabilityBoundingSet: ""
      }
      for (const [key, value] of Object.entries(expected)) assert.strictEqual(single(unit, key), value, key)
      assert.match(single(unit, "MemoryMax"), /^\d+M$/)
      assert.isUndefined(unit.get("ReadWritePaths"), "the API writes nothing")
    }))

  it.effect("waits longer than the longest long poll before killing the API", () =>
    Effect.gen(function*() {
      const unit = yield* readUnitFile(apiUnitFile)
      const api = yield* defaults(ApiConfig)
      assert.isAbove(seconds(single(unit, "TimeoutStopSec")), Duration.toSeconds(api.longPollMaxWait))
    }))
})
