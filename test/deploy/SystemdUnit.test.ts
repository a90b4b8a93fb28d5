/**
 * deploy/systemd/telegram-gateway.service: valid for systemd, hardened, and in
 * step with the code it runs (exit codes, shutdown drain, session path).
 */
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Duration, Effect } from "effect"
import * as Fs from "node:fs/promises"
import * as Path from "node:path"
import { ExitCode } from "../../src/programs/ExitCodes.ts"
import { IngestConfig, TelegramConfig } from "../../src/services/GatewayConfig.ts"
import { deployPath, runCommand } from "./Tools.ts"

const unitFile = deployPath("systemd", "telegram-gateway.service")

/** Every `Key=value` of the unit, by key, in order (a key may repeat). */
const readUnit = Effect.promise(() => Fs.readFile(unitFile, "utf8")).pipe(
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
      const result = yield* runCommand("systemd-analyze", ["verify", unitFile])
      assert.strictEqual(result.code, 0, result.stderr)
      assert.notInclude(result.stderr, "telegram-gateway.service:", result.stderr)
    }))

  it.effect("has an exposure score of at most 2.0 in systemd-analyze security", () =>
    Effect.gen(function*() {
      const result = yield* runCommand("systemd-analyze", ["security", "--offline=true", "--no-pager", unitFile])
      const score = /Overall exposure level for telegram-gateway\.service: ([\d.]+)/.exec(result.stdout)
      assert.isNotNull(score, result.stdout + result.stderr)
      assert.isAtMost(Number(score![1]), 2.0)
    }))

  it.effect("runs the built daemon as its own user, restarting on failure within the spec's limits", () =>
    Effect.gen(function*() {
      const unit = yield* readUnit
      const expected: Record<string, string> = {
        Type: "simple",
        User: "telegram-gateway",
        Group: "telegram-gateway",
        WorkingDirectory: "/opt/telegram-gateway",
        ExecStart: "/usr/bin/node /opt/telegram-gateway/dist/bin/telegram-gateway.js run",
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

  it.effect("does not restart on an exit code that restarting cannot fix", () =>
    Effect.gen(function*() {
      const unit = yield* readUnit
      const prevented = single(unit, "RestartPreventExitStatus").split(/\s+/).map(Number).sort((a, b) => a - b)
      const permanent = Object.entries(ExitCode)
        // 75 (uncommitted at shutdown) is temporary: a restart reads those events again.
        .filter(([name]) => name !== "ok" && name !== "failure" && name !== "uncommittedAtShutdown")
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
