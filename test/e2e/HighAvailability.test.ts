/**
 * High availability with real processes: `telegram-gateway run` children
 * (test/support/GatewayProcess.ts) sharing one PostgreSQL database, Redis and
 * RabbitMQ, against the Telegram simulator in this process, which records
 * every connection and would answer AUTH_KEY_DUPLICATED if two used one key
 * at once, and can revoke the session. Default lease settings (10 s lease,
 * 2 s renewals, 1 s polls).
 */
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Fiber, Option, Redacted, Schedule } from "effect"
import * as Fs from "node:fs/promises"
import * as Path from "node:path"
import { writeSession } from "../../src/layers/SessionFile.ts"
import { clearRefusal, signIn } from "../../src/programs/commands/Login.ts"
import { type TelegramSimulator, TelegramSimulator as Simulator } from "../../src/simulator/index.ts"
import { makeTestDatabase, query, type TestDatabase } from "../support/Database.ts"
import { type GatewayProcess, simulatorEnv, startGatewayProcess } from "../support/GatewayProcess.ts"
import { uniqueName } from "../support/TestGateway.ts"
import { awaitExactEquality, Ledger } from "../telegram/EngineHarness.ts"
import { configFor, makeSessionDirectory, makeSetup } from "../telegram/Harness.ts"
import * as Cli from "../../src/main/Cli.ts"

interface Role {
  readonly account: string
  readonly role: "owner" | "standby" | "failed" | "needs-login"
  readonly owner: string | null
  readonly ownerSince: string | null
  readonly epoch: number | null
  readonly loginNeeded?: { readonly reason: string; readonly since: string }
}

const TAKE_OVER_LIMIT = Duration.seconds(15)

const baseEnv = (database: TestDatabase) => ({
  DATABASE_URL: Redacted.value(database.url),
  DATABASE_MIGRATION_URL: Redacted.value(database.migrationUrl),
  REDIS_KEY_PREFIX: `${uniqueName("tgha")}:`,
  RABBITMQ_EXCHANGE: uniqueName("ha.messages"),
  TELEGRAM_API_ID: "1",
  TELEGRAM_API_HASH: "simulator",
  TELEGRAM_CONNECT_TIMEOUT: "5 seconds",
  TELEGRAM_CALL_TIMEOUT: "5 seconds",
  TELEGRAM_RECONNECT_BASE_DELAY: "100 millis",
  TELEGRAM_RECONNECT_MAX_DELAY: "500 millis"
})

const singleAccountEnv = (sim: TelegramSimulator, base: Record<string, string>, sessionFile: string, channel: string) => ({
  ...base,
  ...simulatorEnv(sim, sessionFile, channel)
})

/** The account roles a process reports on /health/ready, and the HTTP status. */
const readiness = (gateway: GatewayProcess) =>
  gateway.get("/health/ready").pipe(
    Effect.map((response) => {
      if (response === undefined) return undefined
      try {
        const body = JSON.parse(response.body) as { readonly status?: string; readonly accounts?: ReadonlyArray<Role> }
        return { status: response.status, readiness: body.status, accounts: body.accounts ?? [] }
      } catch {
        return undefined
      }
    })
  )

const roleOf = (gateway: GatewayProcess, account = "default") =>
  readiness(gateway).pipe(Effect.map((ready) => ready?.accounts.find((role) => role.account === account)))

/** Generous by default: starting a process (tsx compiles on the fly) takes long on a loaded machine. */
const waitForRole = (gateway: GatewayProcess, role: Role["role"], account = "default", timeout: Duration.Input = "180 seconds") =>
  roleOf(gateway, account).pipe(
    Effect.repeat({ until: (found) => found?.role === role, schedule: Schedule.spaced("100 millis") }),
    Effect.timeoutOrElse({
      duration: timeout,
      orElse: () => Effect.die(new Error(`process ${gateway.pid} never became ${role} of ${account}; its output:\n${gateway.output().slice(-4000)}`))
    })
  )

/** Milliseconds from now until `gateway` owns the account. */
const timeToOwn = (gateway: GatewayProcess, account = "default") =>
  Effect.gen(function*() {
    const started = performance.now()
    yield* waitForRole(gateway, "owner", account)
    return Math.round(performance.now() - started)
  })

/** No two connections ever used the key at once: each one was closed before the next one first used it. */
const assertNeverTwoAtOnce = (sim: TelegramSimulator) => {
  const used = sim.connections.filter((connection) => connection.firstUseAt !== undefined)
  for (let i = 0; i < used.length; i++) {
    for (let j = i + 1; j < used.length; j++) {
      const [a, b] = [used[i]!, used[j]!]
      const overlap = a.lastUseAt! >= b.openedAt && (a.closedAt === undefined || a.closedAt > b.firstUseAt!) &&
        b.lastUseAt! >= a.openedAt
      assert.isFalse(overlap, `connections ${a.id} and ${b.id} both used the key while both were open: ${JSON.stringify(used)}`)
    }
  }
}

/** Posts, edits and deletes on `channel` every 50 ms until interrupted. */
const keepPosting = (ledger: Ledger, channel: ReturnType<TelegramSimulator["world"]["addChannel"]>, label: string) =>
  Effect.gen(function*() {
    let count = 0
    const posted: Array<number> = []
    while (true) {
      count += 1
      posted.push(ledger.post(channel, `${label} ${count}`))
      if (count % 5 === 0) ledger.edit(channel, posted[posted.length - 3]!, `${label} ${count - 2} edited`)
      if (count % 7 === 0) ledger.delete(channel, [posted[posted.length - 4]!])
      yield* Effect.sleep("50 millis")
    }
  })

describe("high availability", () => {
  it.live(
    "a standby waits without connecting, and takes over within 15 s of the owner's SIGKILL while messages flow; nothing is lost",
    () =>
      Effect.gen(function*() {
        const sim = yield* Simulator.start({ log: () => {} })
        const channel = sim.world.addChannel({ username: "ha_kill", title: "HA kill", kind: "channel" })
        const setup = yield* makeSetup(sim)
        const ledger = new Ledger(sim)
        const env = singleAccountEnv(sim, baseEnv(setup.database), setup.sessionFile, "@ha_kill")
        const first = yield* startGatewayProcess({ env })
        yield* waitForRole(first, "owner")
        const second = yield* startGatewayProcess({ env })
        yield* waitForRole(second, "standby")

        const standby = yield* readiness(second)
        assert.strictEqual(standby?.status, 200)
        const owner = standby?.accounts[0]
        assert.match(owner?.owner ?? "", new RegExp(`:${first.pid}:`))
        assert.isString(owner?.ownerSince)
        assert.strictEqual(yield* second.metric(`gateway_role{account="default"}`), 0)
        assert.strictEqual(yield* first.metric(`gateway_role{account="default"}`), 1)
        assert.strictEqual(sim.connections.length, 1, "the standby never opened a connection with the key")

        const posting = yield* keepPosting(ledger, channel, "kill").pipe(Effect.forkChild)
        yield* Effect.sleep("2 seconds")
        first.kill("SIGKILL")
        const took = yield* timeToOwn(second)
        yield* Effect.sleep("2 seconds")
        yield* Fiber.interrupt(posting)

        yield* Effect.logInfo(`take-over after SIGKILL: ${took} ms`)
        assert.isAtMost(took, Duration.toMillis(TAKE_OVER_LIMIT))
        yield* awaitExactEquality(setup, ledger)
        assertNeverTwoAtOnce(sim)
      }),
    { timeout: 600_000 }
  )

  it.live(
    "an owner frozen by SIGSTOP past its lease is replaced within 15 s; woken by SIGCONT it sends nothing, writes nothing and stands by; a clean stop hands over at once",
    () =>
      Effect.gen(function*() {
        const sim = yield* Simulator.start({ log: () => {} })
        const channel = sim.world.addChannel({ username: "ha_stop", title: "HA stop", kind: "channel" })
        const setup = yield* makeSetup(sim)
        const ledger = new Ledger(sim)
        // Two hosts: each has its own copy of the session file (on one host the flock would keep the frozen owner's account).
        const otherHost = yield* makeSessionDirectory
        yield* writeSession(otherHost, Redacted.make(sim.sessionString))
        const base = baseEnv(setup.database)
        const first = yield* startGatewayProcess({ env: singleAccountEnv(sim, base, setup.sessionFile, "@ha_stop") })
        yield* waitForRole(first, "owner")
        const second = yield* startGatewayProcess({ env: singleAccountEnv(sim, base, otherHost, "@ha_stop") })
        yield* waitForRole(second, "standby")

        const posting = yield* keepPosting(ledger, channel, "stop").pipe(Effect.forkChild)
        yield* Effect.sleep("2 seconds")
        first.kill("SIGSTOP")
        const frozenAt = Date.now()
        const took = yield* timeToOwn(second)
        yield* Effect.sleep("3 seconds")
        first.kill("SIGCONT")
        yield* waitForRole(first, "standby", "default", "120 seconds")
        yield* Effect.sleep("2 seconds")
        yield* Fiber.interrupt(posting)

        yield* Effect.logInfo(`take-over after SIGSTOP: ${took} ms`)
        assert.isAtMost(took, Duration.toMillis(TAKE_OVER_LIMIT))
        yield* awaitExactEquality(setup, ledger)
        assertNeverTwoAtOnce(sim)
        // The frozen owner's connection sent nothing after the freeze.
        const frozenConnection = sim.connections[0]!
        assert.isBelow(frozenConnection.lastUseAt!, frozenAt + 1000)
        // Every update-state row was written by the new owner's epoch (2): the woken process wrote none.
        const epochs = yield* query<{ epoch: string }>(setup.database, "SELECT DISTINCT epoch::text AS epoch FROM telegram_channel_state")
        assert.deepStrictEqual(epochs.map((row) => row.epoch), ["2"])
        assert.match(first.output(), /lost the lease of account default \(epoch 1\)/)

        // A clean stop hands over at once.
        second.kill("SIGTERM")
        const handover = yield* timeToOwn(first)
        yield* Effect.logInfo(`hand-over after SIGTERM: ${handover} ms`)
        assert.isAtMost(handover, 5_000)
        assert.strictEqual(yield* second.exited, 0)
      }),
    { timeout: 600_000 }
  )

  it.live("a second process on the same host and session file cannot use it, even with another database", () =>
    Effect.gen(function*() {
      const sim = yield* Simulator.start({ log: () => {} })
      sim.world.addChannel({ username: "ha_flock", title: "HA flock", kind: "channel" })
      const setup = yield* makeSetup(sim)
      const elsewhere = yield* makeTestDatabase("ha_flock")
      const first = yield* startGatewayProcess({ env: singleAccountEnv(sim, baseEnv(setup.database), setup.sessionFile, "@ha_flock") })
      yield* waitForRole(first, "owner")
      const second = yield* startGatewayProcess({ env: singleAccountEnv(sim, baseEnv(elsewhere), setup.sessionFile, "@ha_flock") })

      yield* second.waitForLog(/is in use by another process on this host/, "180 seconds")
      assert.strictEqual((yield* roleOf(second))?.role, "standby")
      assert.strictEqual(sim.connections.length, 1)
      assertNeverTwoAtOnce(sim)
      assert.isTrue(yield* Effect.promise(() => Fs.access(`${setup.sessionFile}.lock`).then(() => true, () => false)))
    }), { timeout: 400_000 })

  it.live(
    "three processes and five accounts: each account owned once, spread out; after a SIGKILL its accounts move and nothing is lost",
    () =>
      Effect.gen(function*() {
        const database = yield* makeTestDatabase("ha_fleet")
        const directory = Path.dirname(yield* makeSessionDirectory)
        const accounts = yield* Effect.forEach([1, 2, 3, 4, 5], (n) =>
          Effect.gen(function*() {
            const sim = yield* Simulator.start({ log: () => {} })
            const channel = sim.world.addChannel({ id: 2_000_000_000 + n, username: `ha_fleet_${n}`, title: `Fleet ${n}`, kind: "channel" })
            const sessionFile = Path.join(directory, `account-${n}.session`)
            yield* writeSession(sessionFile, Redacted.make(sim.sessionString))
            return { name: `acct-${n}`, sim, channel, ledger: new Ledger(sim), sessionFile }
          }))
        const env = {
          ...baseEnv(database),
          TELEGRAM_ACCOUNTS: JSON.stringify(accounts.map((account) => ({
            name: account.name,
            sessionFile: account.sessionFile,
            channels: [`@${account.channel.username}`],
            dcId: account.sim.dcId,
            dcAddress: account.sim.host,
            dcPort: account.sim.port
          }))),
          HA_REBALANCE_INTERVAL: "1 second"
        }
        const processes: Array<GatewayProcess> = []
        for (let i = 0; i < 3; i++) processes.push(yield* startGatewayProcess({ env }))

        const owners = Effect.gen(function*() {
          const counts = new Map<string, Array<number>>()
          for (const [index, process] of processes.entries()) {
            for (const role of (yield* readiness(process))?.accounts ?? []) {
              if (role.role === "owner") counts.set(role.account, [...(counts.get(role.account) ?? []), index])
            }
          }
          return counts
        })
        const settled = (alive: ReadonlyArray<number>) =>
          owners.pipe(
            Effect.repeat({
              until: (counts) =>
                accounts.every((account) => counts.get(account.name)?.length === 1 && alive.includes(counts.get(account.name)![0]!)) &&
                alive.every((index) => [...counts.values()].filter((owner) => owner[0] === index).length <= Math.ceil(accounts.length / alive.length)),
              schedule: Schedule.spaced("250 millis")
            }),
            Effect.timeoutOrElse({
              duration: "240 seconds",
              orElse: () => owners.pipe(Effect.flatMap((counts) => Effect.die(new Error(`accounts never settled: ${JSON.stringify([...counts])}`))))
            })
          )
        const spread = yield* settled([0, 1, 2])
        const posting = yield* Effect.forEach(accounts, (account) => keepPosting(account.ledger, account.channel, account.name).pipe(Effect.forkChild))
        yield* Effect.sleep("2 seconds")
        // Kill a process that owns two accounts.
        const victim = [0, 1, 2].find((index) => [...spread.values()].filter((owner) => owner[0] === index).length === 2)!
        processes[victim]!.kill("SIGKILL")
        const survivors = [0, 1, 2].filter((index) => index !== victim)
        yield* settled(survivors)
        yield* Effect.sleep("2 seconds")
        yield* Effect.forEach(posting, Fiber.interrupt)

        // PostgreSQL holds all five channels: compare with the five ledgers at once.
        const all = new Ledger(accounts[0]!.sim)
        for (const account of accounts) {
          for (const [channelId, messages] of account.ledger.versions) all.versions.set(channelId, messages)
          for (const [channelId, deleted] of account.ledger.deleted) all.deleted.set(channelId, deleted)
        }
        yield* awaitExactEquality({ sim: accounts[0]!.sim, database, sessionFile: accounts[0]!.sessionFile }, all)
        for (const account of accounts) assertNeverTwoAtOnce(account.sim)
      }),
    { timeout: 800_000 }
  )

  it.live(
    "a session Telegram revokes is marked by its owner, which exits 81; the standby holding the same session does not take it and says why, until a login clears the mark",
    () =>
      Effect.gen(function*() {
        const sim = yield* Simulator.start({ log: () => {} })
        sim.world.addChannel({ username: "ha_revoked", title: "HA revoked", kind: "channel" })
        const setup = yield* makeSetup(sim)
        const env = singleAccountEnv(sim, baseEnv(setup.database), setup.sessionFile, "@ha_revoked")
        const first = yield* startGatewayProcess({ env })
        yield* waitForRole(first, "owner")
        const second = yield* startGatewayProcess({ env })
        yield* waitForRole(second, "standby")

        sim.faults.fatal("SESSION_REVOKED")
        assert.strictEqual(yield* first.exited, 81, first.output().slice(-4000))
        const connectionsOfTheOwner = sim.connections.length
        assert.match(first.output(), /marked in PostgreSQL as needing a login \(epoch 1\)/)
        yield* waitForRole(second, "needs-login", "default", "60 seconds")
        // Past the lease and many polls: the standby still never connects with the refused key.
        yield* Effect.sleep("12 seconds")
        assert.strictEqual(sim.connections.length, connectionsOfTheOwner, "the standby never connected with the revoked session")
        const ready = yield* readiness(second)
        assert.strictEqual(ready?.status, 200)
        assert.strictEqual(ready?.readiness, "degraded")
        assert.strictEqual(ready?.accounts[0]?.role, "needs-login")
        assert.strictEqual(ready?.accounts[0]?.loginNeeded?.reason, "SESSION_REVOKED")
        assert.strictEqual(yield* second.metric(`account_login_needed{account="default"}`), 1)
        assert.strictEqual(yield* second.metric(`gateway_role{account="default"}`), 0)
        const reported = second.logs().filter((line) =>
          line.level === "ERROR" && String(line.message).includes("this process holds the same session and does not take the account")
        )
        assert.strictEqual(reported.length, 1, "logged at error level once")
        assert.include(String(reported[0]?.message), "Run 'telegram-gateway login'")
        const marked = yield* query<{ reason: string; epoch: string }>(
          setup.database,
          "SELECT login_needed_reason AS reason, login_needed_epoch::text AS epoch FROM account_leases WHERE account = 'default'"
        )
        assert.deepStrictEqual(marked, [{ reason: "SESSION_REVOKED", epoch: "1" }])

        // The operator logs in again (the simulator keeps its key, so only the cleared mark lets the standby in).
        sim.faults.clear()
        yield* Effect.gen(function*() {
          yield* signIn(
            { phone: Option.some("+15550000001"), code: Option.some("12345"), password: Option.none() },
            { ask: () => Effect.die(new Error("no question expected")), askSecret: () => Effect.die(new Error("no question expected")) },
            Redacted.make(sim.sessionString)
          )
          yield* clearRefusal(Option.none())
        }).pipe(Effect.provide(Cli.services), Effect.provide(configFor(setup, {})))
        const took = yield* timeToOwn(second, "default")
        yield* Effect.logInfo(`owner after the login: ${took} ms`)
        assert.isAbove(sim.connections.length, connectionsOfTheOwner)
        assert.strictEqual(yield* second.metric(`account_login_needed{account="default"}`), 0)
        assert.match(second.output(), /account default was logged in again: it may be taken/)
      }),
    { timeout: 600_000 }
  )
})
