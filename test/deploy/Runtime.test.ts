/**
 * The runtime: Node.js 24, the version in .nvmrc, within package.json's
 * `engines`; the suite itself runs on it (.ci/run puts it first on PATH), no
 * installed package declares a range that excludes it, the native modules
 * load on it, and the systemd units run the copy install.sh puts beside the
 * code (deploy/scripts/node-runtime.sh).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Fs from "node:fs/promises"
import { createRequire } from "node:module"
import * as Os from "node:os"
import * as Path from "node:path"
import { deployPath, projectDir as project, runCommand } from "./Tools.ts"

const require = createRequire(import.meta.url)
const semver = require("semver") as { satisfies(version: string, range: string): boolean }

const readJson = (path: string) =>
  Effect.promise(() => Fs.readFile(Path.join(project, path), "utf8")).pipe(Effect.map((text) => JSON.parse(text)))

const pinned = Effect.promise(() => Fs.readFile(Path.join(project, ".nvmrc"), "utf8")).pipe(
  Effect.map((text) => text.trim())
)

describe("runtime", () => {
  it.effect(".nvmrc names a Node 24 release within engines, and the suite runs on it", () =>
    Effect.gen(function*() {
      const engines = (yield* readJson("package.json")).engines.node as string
      const version = yield* pinned
      assert.match(version, /^24\.\d+\.\d+$/)
      assert.isTrue(semver.satisfies(version, engines), `${version} within ${engines}`)
      assert.isTrue(
        semver.satisfies(process.version, engines),
        `the suite runs on ${process.version}, outside ${engines}: put the runtime first on PATH (bash deploy/scripts/node-runtime.sh)`
      )
    }))

  it.effect("no installed package declares an engines range that excludes the runtime", () =>
    Effect.gen(function*() {
      const version = yield* pinned
      const lock = yield* readJson("package-lock.json")
      const outside = Object.entries(lock.packages as Record<string, { engines?: { node?: string } }>)
        .filter(([path, entry]) => path !== "" && typeof entry.engines?.node === "string")
        .filter(([, entry]) => !semver.satisfies(version, entry.engines!.node!))
        .map(([path, entry]) => `${path} (${entry.engines!.node})`)
      assert.deepStrictEqual(outside, [])
    }))

  it("the native modules load their compiled binding, not a JavaScript fallback", () => {
    const nodeGypBuild = require("node-gyp-build") as (directory: string) => unknown
    for (const module of ["bufferutil", "utf-8-validate"]) {
      const directory = Path.dirname(require.resolve(`${module}/package.json`))
      assert.isDefined(nodeGypBuild(directory), module)
    }
  })

  it.effect("the systemd units run the runtime install.sh installs", () =>
    Effect.gen(function*() {
      for (const unit of ["telegram-gateway.service", "telegram-gateway-api.service"]) {
        const text = yield* Effect.promise(() => Fs.readFile(deployPath("systemd", unit), "utf8"))
        const execStart = text.split("\n").find((line) => line.startsWith("ExecStart="))
        assert.match(execStart ?? "", /^ExecStart=\/opt\/telegram-gateway\/node\/bin\/node /, unit)
      }
      const install = yield* Effect.promise(() => Fs.readFile(deployPath("scripts", "install.sh"), "utf8"))
      assert.include(install, `node-runtime.sh" "$app_dir/node"`)
    }))

  it.effect("node-runtime.sh has --help, and leaves an installed runtime alone", () =>
    Effect.gen(function*() {
      const script = deployPath("scripts", "node-runtime.sh")
      const help = yield* runCommand("bash", [script, "--help"])
      assert.strictEqual(help.code, 0, help.stderr)
      assert.include(help.stdout, "node-runtime.sh [--version X.Y.Z]")
      // The directory holding the node running this suite, as .ci/run installed it.
      const runtime = Path.dirname(Path.dirname(process.execPath))
      const version = process.version.slice(1)
      const again = yield* runCommand("bash", [script, "--version", version, runtime])
      assert.strictEqual(again.code, 0, again.stderr)
      assert.strictEqual(again.stdout.trim(), Path.join(runtime, "bin"))
      assert.include(again.stderr, "already in")
      const bad = yield* runCommand("bash", [script, "--version", "twenty-four"])
      assert.notStrictEqual(bad.code, 0)
    }))

  it.effect("node-runtime.sh never replaces a directory it did not install", () =>
    Effect.gen(function*() {
      const foreign = yield* Effect.acquireRelease(
        Effect.promise(() => Fs.mkdtemp(Path.join(Os.tmpdir(), "foreign-runtime-"))),
        (path) => Effect.promise(() => Fs.rm(path, { recursive: true, force: true }))
      )
      yield* Effect.promise(() => Fs.writeFile(Path.join(foreign, "keep.txt"), "mine\n"))
      const refused = yield* runCommand("bash", [deployPath("scripts", "node-runtime.sh"), "--version", "24.0.0", foreign])
      assert.notStrictEqual(refused.code, 0)
      assert.include(refused.stderr, "was not installed by node-runtime.sh")
      assert.strictEqual(yield* Effect.promise(() => Fs.readFile(Path.join(foreign, "keep.txt"), "utf8")), "mine\n")
    }))
})
