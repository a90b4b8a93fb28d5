/**
 * The GramJS patch (patches/telegram+2.26.22.patch, applied at install by
 * patches/apply-telegram-patch.mjs) and the session that keeps GramJS's entity
 * store bounded (OneRowPerPeerSession in src/layers/GramJsClient.ts): each fix
 * proven against the real GramJS client and the simulator over TCP, the long
 * codec against GramJS's own original code, and the applier on copies.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { execFile } from "node:child_process"
import { randomBytes } from "node:crypto"
import * as Fs from "node:fs/promises"
import { createRequire, Module } from "node:module"
import * as Os from "node:os"
import * as Path from "node:path"
import { Logger, TelegramClient } from "telegram"
import { Raw } from "telegram/events/Raw.js"
import { BinaryReader } from "telegram/extensions/BinaryReader.js"
import { LogLevel } from "telegram/extensions/Logger.js"
import { readBigIntFromBuffer, returnBigInt, toSignedLittleBuffer } from "telegram/Helpers.js"
import { StringSession } from "telegram/sessions/index.js"
import { OneRowPerPeerSession } from "../../src/layers/GramJsClient.ts"
import { TelegramSimulator } from "../../src/simulator/index.ts"

const root = Path.resolve(import.meta.dirname, "..", "..")
const applier = Path.join(root, "patches", "apply-telegram-patch.mjs")
const installed = Path.dirname(createRequire(import.meta.url).resolve("telegram/package.json"))
const patchedFiles = ["package.json", "Helpers.js", "network/MTProtoSender.js"]

const runApplier = (...args: ReadonlyArray<string>) =>
  Effect.promise(() =>
    new Promise<{ code: number; output: string }>((resolve) => {
      execFile(process.execPath, [applier, ...args], (error, stdout, stderr) =>
        resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : 1, output: stdout + stderr }))
    })
  )

/** A scoped node_modules holding a copy of the installed package's patched files. */
const copyOfTelegram = Effect.acquireRelease(
  Effect.promise(async () => {
    const modules = await Fs.mkdtemp(Path.join(Os.tmpdir(), "telegram-patch-test-"))
    for (const file of patchedFiles) {
      await Fs.mkdir(Path.dirname(Path.join(modules, "telegram", file)), { recursive: true })
      await Fs.copyFile(Path.join(installed, file), Path.join(modules, "telegram", file))
    }
    return modules
  }),
  (modules) => Effect.promise(() => Fs.rm(modules, { recursive: true, force: true }))
)

const readCopy = (modules: string) =>
  Effect.promise(() => Promise.all(patchedFiles.map((file) => Fs.readFile(Path.join(modules, "telegram", file), "utf8"))))

type Helpers = { readBigIntFromBuffer: typeof readBigIntFromBuffer; toSignedLittleBuffer: typeof toSignedLittleBuffer }

/** GramJS's own Helpers.js as shipped (the patch reverted on a copy), loaded beside the installed one so both share big-integer. */
const originalHelpers = Effect.gen(function*() {
  const modules = yield* copyOfTelegram
  const reverted = yield* runApplier("--revert", "--modules", modules)
  assert.strictEqual(reverted.code, 0, reverted.output)
  const source = yield* Effect.promise(() => Fs.readFile(Path.join(modules, "telegram", "Helpers.js"), "utf8"))
  assert.notInclude(source, "telegram-gateway patch")
  const filename = Path.join(installed, "Helpers.original.js")
  const module = new Module(filename) as Module & { _compile(source: string, filename: string): void; paths: Array<string> }
  module.filename = filename
  module.paths = (Module as unknown as { _nodeModulePaths(from: string): Array<string> })._nodeModulePaths(installed)
  module._compile(source, filename)
  return module.exports as Helpers
})

const edgeLongs = [
  0n, 1n, -1n, 2n, 255n, 256n, -256n, 999n, -999n, 1000n, 2n ** 31n - 1n, -(2n ** 31n), 2n ** 32n, -(2n ** 32n) - 1n,
  2n ** 53n - 1n, 2n ** 53n, 2n ** 53n + 1n, -(2n ** 53n) - 1n, 2n ** 62n, 2n ** 63n - 1n, -(2n ** 63n), -(2n ** 63n) + 1n
]

/** A client that only listens, on `session`, connected to `sim`; destroyed with the scope. */
const listeningClient = (sim: TelegramSimulator, session: StringSession) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const client = new TelegramClient(session, 1, "simulator", {
        ...sim.clientOptions,
        connectionRetries: 1,
        baseLogger: new Logger(LogLevel.NONE)
      })
      if (!(await client.connect())) throw new Error("GramJS could not reach the simulator")
      await client.getMe()
      return client
    }),
    (client) => Effect.promise(() => client.destroy().catch(() => undefined))
  ).pipe(Effect.timeout("15 seconds"))

const waitFor = (condition: () => boolean, what: string, timeout = 10_000) =>
  Effect.gen(function*() {
    const deadline = Date.now() + timeout
    while (!condition()) {
      if (Date.now() > deadline) return yield* Effect.die(new Error(`timed out waiting for ${what}`))
      yield* Effect.sleep("20 millis")
    }
  })

const ackedIds = (sim: TelegramSimulator) => sim.acks.reduce((sum, ack) => sum + ack.ids, 0)

/** Posts `count` messages, one pushed update per turn, so each leaves as its own push. */
const postOneByOne = (sim: TelegramSimulator, channel: Parameters<TelegramSimulator["world"]["post"]>[0], count: number) =>
  Effect.promise(async () => {
    for (let i = 1; i <= count; i++) {
      sim.world.post(channel, { text: `push ${i}` })
      await new Promise((resolve) => setImmediate(resolve))
    }
  })

interface SenderInternals {
  readonly _pendingAck: Set<unknown>
}

describe("GramJS patch", () => {
  it.live("a client that only listens acknowledges pushes as they come, not on its 9 s ping, in bounded msgs_ack", () =>
    Effect.gen(function*() {
      const sim = yield* TelegramSimulator.start({ port: 19101 })
      const channel = sim.world.addChannel({ username: "ack_channel", title: "Acks", kind: "channel" })
      const client = yield* listeningClient(sim, new StringSession(sim.sessionString))
      let received = 0
      client.addEventHandler(() => void received++, new Raw({}))
      const acksBefore = sim.acks.length
      const idsBefore = ackedIds(sim)

      yield* postOneByOne(sim, channel, 3000)
      yield* waitFor(() => received >= 3000, "every push at the client", 30_000)
      const lastReceivedAt = Date.now()
      // GramJS used to send them only with its next request: the ping, every 9 s, in one msgs_ack of every pending id.
      yield* waitFor(() => ackedIds(sim) - idsBefore >= 3000, "an ack for every push, within 2 s of the last", 2000)

      const acks = sim.acks.slice(acksBefore)
      assert.isBelow(acks[0]!.at, lastReceivedAt, "acks were already leaving while pushes still came in")
      assert.isAtLeast(acks.length, 3)
      assert.isAtMost(Math.max(...acks.map((ack) => ack.ids)), 1024, "no msgs_ack holds more than 1,024 ids")
    }))

  it.live("200,000 pending acks leave in msgs_ack of at most 1,024 ids instead of throwing", () =>
    Effect.gen(function*() {
      const sim = yield* TelegramSimulator.start({ port: 19102 })
      const channel = sim.world.addChannel({ username: "ack_flood", title: "Acks", kind: "channel" })
      const client = yield* listeningClient(sim, new StringSession(sim.sessionString))
      const pending = (client as unknown as { _sender: SenderInternals })._sender._pendingAck
      // As if 200,000 pushes had arrived unacknowledged (GramJS's Array(...pending) threw a RangeError past ~130,000).
      for (let i = 1; i <= 200_000; i++) pending.add(returnBigInt(i * 4 + 1))
      const before = ackedIds(sim)

      sim.world.post(channel, { text: "one more push" })
      yield* waitFor(() => ackedIds(sim) - before >= 200_001, "200,001 acknowledged ids", 15_000)

      assert.strictEqual(pending.size, 0)
      assert.isAtMost(Math.max(...sim.acks.map((ack) => ack.ids)), 1024)
      assert.isAtLeast(sim.acks.length, Math.ceil(200_001 / 1024))
    }))

  it.effect("readLong and the 64-bit writer give exactly what GramJS's original big-integer code gives", () =>
    Effect.gen(function*() {
      const original = yield* originalHelpers
      const values = [...edgeLongs, ...Array.from({ length: 5000 }, () => randomBytes(8).readBigInt64LE(0))]
      for (const value of values) {
        const little = Buffer.alloc(8)
        little.writeBigInt64LE(value)
        const big = Buffer.from(little).reverse()
        for (const signed of [true, false]) {
          for (const [buffer, isLittle] of [[little, true], [big, false]] as const) {
            const expected = original.readBigIntFromBuffer(buffer, isLittle, signed)
            const actual = readBigIntFromBuffer(buffer, isLittle, signed)
            assert.strictEqual(actual.constructor, expected.constructor, `class of ${value}`)
            assert.strictEqual(actual.toString(), expected.toString(), `${value} signed=${signed} little=${isLittle}`)
          }
          const expected = original.readBigIntFromBuffer(little, true, signed)
          const read = signed ? new BinaryReader(little).readLong() : new BinaryReader(little).readLong(false)
          assert.isTrue(read.equals(expected), `BinaryReader.readLong(${signed}) of ${value}`)
          assert.deepStrictEqual(toSignedLittleBuffer(expected, 8), original.toSignedLittleBuffer(expected, 8), `write ${expected}`)
        }
      }
      assert.strictEqual(new BinaryReader(Buffer.from("ffffffffffffff7f", "hex")).readLong().toString(), "9223372036854775807")
      assert.strictEqual(new BinaryReader(Buffer.from("0000000000000080", "hex")).readLong().toString(), "-9223372036854775808")
      assert.strictEqual(new BinaryReader(Buffer.from("ffffffffffffffff", "hex")).readLong().toString(), "-1")
      assert.strictEqual(new BinaryReader(Buffer.from("ffffffffffffffff", "hex")).readLong(false).toString(), "18446744073709551615")
      // Values outside 64 bits (numbers, native bigints) are written as their low 64 bits, as before.
      for (const value of [returnBigInt(2n ** 64n + 5n), returnBigInt(-(2n ** 64n) - 7n), 12345, -12345, "-98765432109876"]) {
        assert.deepStrictEqual(toSignedLittleBuffer(value, 8), original.toSignedLittleBuffer(value, 8), `write ${value}`)
      }
      // What the patch is for: GramJS decoded each long through a hex string and toString(2) (about 13 µs here, 84 ns natively).
      const sample = randomBytes(8)
      const timeOf = (decode: Helpers["readBigIntFromBuffer"]) => {
        const started = performance.now()
        for (let i = 0; i < 20_000; i++) decode(sample, true, true)
        return performance.now() - started
      }
      const originalMs = timeOf(original.readBigIntFromBuffer)
      const patchedMs = timeOf(readBigIntFromBuffer)
      assert.isBelow(patchedMs * 10, originalMs, `20,000 longs: ${patchedMs.toFixed(1)} ms patched, ${originalMs.toFixed(1)} ms original`)
      // int128 and int256 keep GramJS's own path.
      const nonce = randomBytes(16)
      assert.strictEqual(readBigIntFromBuffer(nonce, true, true).toString(), original.readBigIntFromBuffer(nonce, true, true).toString())
    }))

  it.live("the gateway's session keeps one entity row per peer over hundreds of pushes (GramJS's own adds a row per push)", () =>
    Effect.gen(function*() {
      // One simulator per client: two connections on one key would be AUTH_KEY_DUPLICATED.
      const sims = [yield* TelegramSimulator.start({ port: 19103 }), yield* TelegramSimulator.start({ port: 19104 })]
      const groups = sims.map((sim) => sim.world.addChannel({ username: "entity_group", title: "Entities", kind: "supergroup" }))
      const bounded = new OneRowPerPeerSession(sims[0]!.sessionString)
      const plain = new StringSession(sims[1]!.sessionString)
      const rows = (session: StringSession) => (session as unknown as { _entities: Set<unknown> })._entities.size
      const clients = [yield* listeningClient(sims[0]!, bounded), yield* listeningClient(sims[1]!, plain)]
      let received = 0
      for (const client of clients) client.addEventHandler(() => void received++, new Raw({}))
      const postToBoth = (count: number) =>
        Effect.forEach([0, 1], (i) => postOneByOne(sims[i]!, groups[i]!, count), { concurrency: "unbounded", discard: true })

      yield* postToBoth(10)
      yield* waitFor(() => received >= 20, "the first 10 pushes at both clients")
      const boundedAfter10 = bounded.entityRows
      const plainAfter10 = rows(plain)
      yield* postToBoth(300)
      yield* waitFor(() => received >= 620, "310 pushes at both clients")

      assert.strictEqual(bounded.entityRows, boundedAfter10, "constant over 300 more pushes")
      assert.isAtMost(bounded.entityRows, 3, "the self user, the author and the group")
      // The leak this session fixes: GramJS's MemorySession stores the author and the group again with each push.
      assert.isAtLeast(rows(plain) - plainAfter10, 600)
    }))

  it.effect("the applier is idempotent, reverts cleanly, refuses another telegram version and leaves files alone when a hunk does not apply", () =>
    Effect.gen(function*() {
      const check = yield* runApplier("--check")
      assert.strictEqual(check.code, 0, `the installed telegram is patched: ${check.output}`)

      const modules = yield* copyOfTelegram
      const patched = yield* readCopy(modules)
      const again = yield* runApplier("--modules", modules)
      assert.strictEqual(again.code, 0, again.output)
      assert.include(again.output, "already applied")
      assert.deepStrictEqual(yield* readCopy(modules), patched)

      assert.strictEqual((yield* runApplier("--revert", "--modules", modules)).code, 0)
      const notApplied = yield* runApplier("--check", "--modules", modules)
      assert.strictEqual(notApplied.code, 1)
      assert.include(notApplied.output, "not applied")
      const applied = yield* runApplier("--modules", modules)
      assert.strictEqual(applied.code, 0, applied.output)
      assert.include(applied.output, "applied (")
      assert.deepStrictEqual(yield* readCopy(modules), patched)

      // A file GramJS changed: nothing is written, not even the files whose hunks would apply.
      assert.strictEqual((yield* runApplier("--revert", "--modules", modules)).code, 0)
      const sender = Path.join(modules, "telegram", "network", "MTProtoSender.js")
      const changed = (yield* Effect.promise(() => Fs.readFile(sender, "utf8"))).replace("msgIds: Array(...this._pendingAck)", "msgIds: [...this._pendingAck]")
      yield* Effect.promise(() => Fs.writeFile(sender, changed))
      const before = yield* readCopy(modules)
      const refused = yield* runApplier("--modules", modules)
      assert.strictEqual(refused.code, 1)
      assert.include(refused.output, "network/MTProtoSender.js, hunk")
      assert.include(refused.output, "does not apply")
      assert.deepStrictEqual(yield* readCopy(modules), before)

      const manifest = Path.join(modules, "telegram", "package.json")
      const json = JSON.parse(yield* Effect.promise(() => Fs.readFile(manifest, "utf8"))) as { version: string }
      yield* Effect.promise(() => Fs.writeFile(manifest, JSON.stringify({ ...json, version: "2.26.23" })))
      const otherVersion = yield* runApplier("--modules", modules)
      assert.strictEqual(otherVersion.code, 1)
      assert.include(otherVersion.output, "is for telegram 2.26.22, but 2.26.23 is installed")
    }))
})
