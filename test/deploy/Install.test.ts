/**
 * deploy/scripts/install.sh, run for real under a scratch root (`--root`):
 * the system user in that root's own /etc/passwd, the 0700 session directory
 * owned by it, the build, the env file and the unit; run twice without harm.
 * The host itself is never touched.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Fs from "node:fs/promises"
import * as Os from "node:os"
import * as Path from "node:path"
import { deployPath, runCommand } from "./Tools.ts"

const script = deployPath("scripts", "install.sh")

const scratchDirectory = (prefix: string) =>
  Effect.acquireRelease(
    Effect.promise(() => Fs.mkdtemp(Path.join(Os.tmpdir(), prefix))),
    (path) => Effect.promise(() => Fs.rm(path, { recursive: true, force: true }))
  )

const write = (path: string, text: string) =>
  Effect.promise(async () => {
    await Fs.mkdir(Path.dirname(path), { recursive: true })
    await Fs.writeFile(path, text)
  })

/** A built checkout: what install.sh copies, with the project's real unit file. */
const builtCheckout = Effect.gen(function*() {
  const source = yield* scratchDirectory("install-source-")
  yield* write(Path.join(source, "dist", "bin", "telegram-gateway.js"), "// the daemon\n")
  yield* write(Path.join(source, "sql", "0001_messages.up.sql"), "SELECT 1;\n")
  yield* write(Path.join(source, "docs", "operations.md"), "# Operations\n")
  yield* write(Path.join(source, "package.json"), "{}\n")
  yield* write(Path.join(source, "package-lock.json"), "{}\n")
  yield* write(Path.join(source, ".env.example"), "# DATABASE_URL=postgres://...\n")
  for (const unit of ["telegram-gateway.service", "telegram-gateway-api.service"]) {
    yield* Effect.promise(() => Fs.cp(deployPath("systemd", unit), Path.join(source, "deploy", "systemd", unit)))
  }
  return source
})

/** A root with the empty account databases useradd --prefix expects. */
const scratchRoot = Effect.gen(function*() {
  const root = yield* scratchDirectory("install-root-")
  for (const file of ["passwd", "group", "shadow", "gshadow"]) yield* write(Path.join(root, "etc", file), "")
  return root
})

const install = (source: string, root: string, ...flags: ReadonlyArray<string>) =>
  runCommand("bash", [script, "--source", source, "--root", root, "--skip-npm", ...flags])

const mode = (path: string) => Effect.promise(() => Fs.stat(path)).pipe(Effect.map((stat) => stat.mode & 0o777))

const hostAccount = runCommand("getent", ["passwd", "telegram-gateway"])

describe("install.sh", () => {
  it.effect("is valid bash", () =>
    Effect.gen(function*() {
      const result = yield* runCommand("bash", ["-n", script])
      assert.strictEqual(result.code, 0, result.stderr)
    }))

  it.effect("with --dry-run prints every step and changes nothing", () =>
    Effect.gen(function*() {
      const source = yield* builtCheckout
      const root = yield* scratchRoot
      const result = yield* install(source, root, "--dry-run")
      assert.strictEqual(result.code, 0, result.stderr)
      assert.include(result.stdout, "+ useradd --prefix")
      assert.include(result.stdout, `install -d -m 0700 -o telegram-gateway -g telegram-gateway ${root}/opt/telegram-gateway/.session`)
      assert.include(result.stdout, `${root}/etc/systemd/system/telegram-gateway.service`)
      assert.deepStrictEqual((yield* Effect.promise(() => Fs.readdir(root))).sort(), ["etc"])
      assert.strictEqual(yield* Effect.promise(() => Fs.readFile(Path.join(root, "etc", "passwd"), "utf8")), "")
    }).pipe(Effect.scoped))

  it.effect("creates the user, the 0700 session directory, the build, the env file and the unit", () =>
    Effect.gen(function*() {
      const source = yield* builtCheckout
      const root = yield* scratchRoot
      const hostBefore = yield* hostAccount
      const result = yield* install(source, root)
      assert.strictEqual(result.code, 0, result.stdout + result.stderr)

      const passwd = yield* Effect.promise(() => Fs.readFile(Path.join(root, "etc", "passwd"), "utf8"))
      const account = /^telegram-gateway:x:(\d+):(\d+):[^:]*:\/opt\/telegram-gateway:\/usr\/sbin\/nologin$/m.exec(passwd)
      assert.isNotNull(account, passwd)

      const session = Path.join(root, "opt", "telegram-gateway", ".session")
      const sessionStat = yield* Effect.promise(() => Fs.stat(session))
      assert.strictEqual(sessionStat.mode & 0o777, 0o700)
      assert.strictEqual(sessionStat.uid, Number(account![1]))
      assert.strictEqual(sessionStat.gid, Number(account![2]))

      const envFile = Path.join(root, "etc", "telegram-gateway", "gateway.env")
      assert.strictEqual(yield* mode(envFile), 0o640)
      assert.strictEqual(yield* mode(Path.join(root, "etc", "telegram-gateway")), 0o750)
      assert.strictEqual(
        yield* Effect.promise(() => Fs.readFile(envFile, "utf8")),
        "# DATABASE_URL=postgres://...\n"
      )
      for (const unit of ["telegram-gateway.service", "telegram-gateway-api.service"]) {
        assert.strictEqual(
          yield* Effect.promise(() => Fs.readFile(Path.join(root, "etc", "systemd", "system", unit), "utf8")),
          yield* Effect.promise(() => Fs.readFile(deployPath("systemd", unit), "utf8")),
          unit
        )
      }
      assert.strictEqual(yield* mode(Path.join(root, "opt", "telegram-gateway", "dist", "bin", "telegram-gateway.js")), 0o644)
      assert.include(result.stderr, "systemd not reloaded")

      // The host's own accounts are untouched.
      assert.deepStrictEqual(yield* hostAccount, hostBefore)
    }).pipe(Effect.scoped))

  it.effect("runs again without harm: keeps the user, the session and an edited env file, drops stale build files", () =>
    Effect.gen(function*() {
      const source = yield* builtCheckout
      const root = yield* scratchRoot
      assert.strictEqual((yield* install(source, root)).code, 0)
      const app = Path.join(root, "opt", "telegram-gateway")
      const envFile = Path.join(root, "etc", "telegram-gateway", "gateway.env")
      yield* write(Path.join(app, ".session", "telegram.session"), "1session")
      yield* write(envFile, "TELEGRAM_API_ID=12345\n")
      yield* Effect.promise(() => Fs.chmod(Path.join(app, ".session"), 0o755))
      yield* write(Path.join(app, "dist", "removed-upstream.js"), "")

      const again = yield* install(source, root)
      assert.strictEqual(again.code, 0, again.stdout + again.stderr)
      assert.notInclude(again.stdout, "useradd")
      assert.include(again.stderr, "user telegram-gateway exists")
      const passwd = yield* Effect.promise(() => Fs.readFile(Path.join(root, "etc", "passwd"), "utf8"))
      assert.strictEqual(passwd.split("\n").filter((line) => line.startsWith("telegram-gateway:")).length, 1)
      assert.strictEqual(yield* Effect.promise(() => Fs.readFile(Path.join(app, ".session", "telegram.session"), "utf8")), "1session")
      assert.strictEqual(yield* mode(Path.join(app, ".session")), 0o700)
      assert.strictEqual(yield* Effect.promise(() => Fs.readFile(envFile, "utf8")), "TELEGRAM_API_ID=12345\n")
      const stale = yield* Effect.promise(() => Fs.access(Path.join(app, "dist", "removed-upstream.js")).then(() => true, () => false))
      assert.isFalse(stale)
    }).pipe(Effect.scoped))

  it.effect("refuses a checkout that was not built", () =>
    Effect.gen(function*() {
      const source = yield* builtCheckout
      const root = yield* scratchRoot
      yield* Effect.promise(() => Fs.rm(Path.join(source, "dist"), { recursive: true }))
      const result = yield* install(source, root)
      assert.notStrictEqual(result.code, 0)
      assert.include(result.stderr, "run 'npm run build' there first")
      assert.deepStrictEqual((yield* Effect.promise(() => Fs.readdir(root))).sort(), ["etc"])
    }).pipe(Effect.scoped))
})
