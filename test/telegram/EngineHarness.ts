/**
 * For the update engine's tests: a ledger of everything the simulator's
 * channels went through (every version of every message, every deletion),
 * the whole gateway in-process over the real tiers, and a comparison of the
 * ledger with what PostgreSQL holds.
 */
import { ConfigProvider, type Duration, Effect, Layer, Redacted } from "effect"
import * as Gateway from "../../src/main/Daemon.ts"
import { receive } from "../../src/programs/Gateway.ts"
import type { ChannelRef, TelegramSimulator } from "../../src/simulator/index.ts"
import { query } from "../support/Database.ts"
import { makeTestConsumer, testConfig, uniqueName } from "../support/TestGateway.ts"
import { simulatorTelegram, type SourceSetup } from "./Harness.ts"

/** What happened in the simulator, as PostgreSQL should end up holding it. */
export class Ledger {
  /** channel id -> message id -> texts of every version, in order. */
  readonly versions = new Map<number, Map<number, Array<string>>>()
  /** channel id -> deleted message ids. */
  readonly deleted = new Map<number, Set<number>>()
  private readonly sim: TelegramSimulator

  constructor(sim: TelegramSimulator) {
    this.sim = sim
  }

  post(channel: ChannelRef, text: string): number {
    const message = this.sim.world.post(channel, { text })
    this.messages(channel.id).set(message.id, [text])
    return message.id
  }

  edit(channel: ChannelRef, messageId: number, text: string): void {
    this.sim.world.edit(channel, messageId, text)
    this.messages(channel.id).get(messageId)?.push(text)
  }

  delete(channel: ChannelRef, messageIds: ReadonlyArray<number>): void {
    const deleted = this.sim.world.delete(channel, messageIds)
    const set = this.deleted.get(channel.id) ?? new Set()
    for (const id of deleted) set.add(id)
    this.deleted.set(channel.id, set)
  }

  private messages(channelId: number) {
    let map = this.versions.get(channelId)
    if (map === undefined) {
      map = new Map()
      this.versions.set(channelId, map)
    }
    return map
  }
}

interface Row {
  readonly channel_id: string
  readonly message_id: number
  readonly text: string
  readonly deleted: boolean
}

/** What PostgreSQL holds, in the ledger's shape. */
export const storedState = (setup: SourceSetup) =>
  Effect.gen(function*() {
    const rows = yield* query<Row>(
      setup.database,
      `SELECT m.channel_id::text AS channel_id, m.message_id, m.text,
         (m.deleted_at IS NOT NULL OR d.message_id IS NOT NULL) AS deleted
       FROM messages m LEFT JOIN message_deletions d USING (channel_id, message_id)
       ORDER BY m.channel_id, m.message_id, m.version`
    )
    const deletions = yield* query<{ channel_id: string; message_id: number }>(
      setup.database,
      "SELECT channel_id::text AS channel_id, message_id FROM message_deletions"
    )
    const versions = new Map<number, Map<number, Array<string>>>()
    for (const row of rows) {
      const channel = versions.get(Number(row.channel_id)) ?? new Map<number, Array<string>>()
      versions.set(Number(row.channel_id), channel)
      const texts = channel.get(row.message_id) ?? []
      texts.push(row.text)
      channel.set(row.message_id, texts)
    }
    const deleted = new Map<number, Set<number>>()
    for (const row of deletions) {
      const set = deleted.get(Number(row.channel_id)) ?? new Set<number>()
      set.add(row.message_id)
      deleted.set(Number(row.channel_id), set)
    }
    return { versions, deleted }
  })

const sortedEntries = <V>(map: Map<number, V>) => [...map.entries()].sort((a, b) => a[0] - b[0])

/** Every message with every version, and every deletion: the ledger's and PostgreSQL's, as comparable values. */
export const describeExact = (state: { versions: Ledger["versions"]; deleted: Ledger["deleted"] }) =>
  sortedEntries(state.versions).map(([channelId, messages]) => ({
    channelId,
    messages: sortedEntries(messages),
    deleted: [...(state.deleted.get(channelId) ?? [])].sort((a, b) => a - b)
  }))

/** Polls until PostgreSQL holds exactly what the ledger says (every version, every deletion); returns the last comparison. */
export const awaitExactEquality = (setup: SourceSetup, ledger: Ledger, timeout: Duration.Input = "60 seconds") =>
  Effect.gen(function*() {
    const expected = JSON.stringify(describeExact(ledger))
    let actual = ""
    while (true) {
      actual = JSON.stringify(describeExact(yield* storedState(setup)))
      if (actual === expected) return
      yield* Effect.sleep("200 millis")
    }
  }).pipe(
    Effect.timeoutOrElse({
      duration: timeout,
      orElse: () =>
        storedState(setup).pipe(
          Effect.flatMap((stored) =>
            Effect.die(new Error(`PostgreSQL never matched the simulator:\n${diff(describeExact(ledger), describeExact(stored))}`))
          )
        )
    })
  )

const diff = (expected: ReturnType<typeof describeExact>, actual: ReturnType<typeof describeExact>) => {
  const lines: Array<string> = []
  for (const channel of expected) {
    const stored = actual.find((c) => c.channelId === channel.channelId)
    const storedMessages = new Map(stored?.messages ?? [])
    const missing = channel.messages.filter(([id]) => !storedMessages.has(id)).map(([id]) => id)
    const wrong = channel.messages.filter(([id, texts]) => storedMessages.has(id) && JSON.stringify(storedMessages.get(id)) !== JSON.stringify(texts))
    const missingDeletions = channel.deleted.filter((id) => !(stored?.deleted ?? []).includes(id))
    lines.push(
      `channel ${channel.channelId}: ${channel.messages.length} expected, ${stored?.messages.length ?? 0} stored; missing ids ${missing.slice(0, 20).join(",")}${missing.length > 20 ? ` (+${missing.length - 20})` : ""}; wrong versions ${wrong.slice(0, 5).map(([id, texts]) => `${id}: ${JSON.stringify(texts)} vs ${JSON.stringify(storedMessages.get(id))}`).join("; ")}; deletions missing ${missingDeletions.slice(0, 20).join(",")}`
    )
  }
  return lines.join("\n")
}

/** Engine settings that make gaps, polls and state writes happen within a test's seconds. */
export const fastEngine = { pollInterval: "1 second", gapHold: "300 millis", stateFlushInterval: "200 millis" } as const

/**
 * The gateway in this process: the real source and ingestion over the real
 * tiers; stopped with the scope. `databaseUrl` (e.g. through a TcpProxy)
 * replaces the test database's own.
 */
export const runGateway = (setup: SourceSetup, telegram: Record<string, unknown>, databaseUrl?: string) =>
  Effect.gen(function*() {
    const exchange = uniqueName("engine.messages")
    yield* makeTestConsumer(exchange, { consume: false })
    const config = ConfigProvider.layerAdd(ConfigProvider.fromUnknown({ telegram: simulatorTelegram(setup, telegram) })).pipe(
      Layer.provide(testConfig({ databaseUrl: databaseUrl ?? Redacted.value(setup.database.url), exchange, keyPrefix: `${uniqueName("tgeng")}:` }))
    )
    yield* receive.pipe(
      Effect.provide(Gateway.ingestion),
      Effect.provide(Gateway.telegram),
      Effect.provide(config),
      Effect.forkScoped
    )
  })

/**
 * Polls until PostgreSQL holds the simulator's current state: each live
 * message's newest version has its current text, and each deleted message
 * is either marked deleted or was never stored (posted and deleted inside a
 * too-long gap, which Telegram never replays; nor the versions in between).
 */
export const awaitCurrentEquality = (setup: SourceSetup, ledger: Ledger, timeout: Duration.Input = "120 seconds") =>
  Effect.gen(function*() {
    const expected = JSON.stringify(describeCurrent(ledger, undefined))
    while (true) {
      const stored = yield* storedState(setup)
      if (JSON.stringify(describeCurrent(ledger, stored)) === expected) return
      yield* Effect.sleep("500 millis")
    }
  }).pipe(
    Effect.timeoutOrElse({
      duration: timeout,
      orElse: () =>
        storedState(setup).pipe(
          Effect.flatMap((stored) =>
            Effect.die(new Error(`PostgreSQL never matched the simulator's current state:\n${JSON.stringify(describeCurrent(ledger, stored)).slice(0, 2000)}`))
          )
        )
    })
  )

/** Per channel: live messages with their current text, and deleted ones not stored as live. */
const describeCurrent = (ledger: Ledger, stored: { versions: Ledger["versions"]; deleted: Ledger["deleted"] } | undefined) =>
  sortedEntries(ledger.versions).map(([channelId, messages]) => {
    const deleted = ledger.deleted.get(channelId) ?? new Set<number>()
    const source = stored === undefined ? messages : stored.versions.get(channelId) ?? new Map<number, Array<string>>()
    const storedDeleted = stored === undefined ? deleted : stored.deleted.get(channelId) ?? new Set<number>()
    const live = sortedEntries(source).filter(([id]) => !deleted.has(id)).map(([id, texts]) => [id, texts[texts.length - 1]])
    const deletedButLive = [...deleted].filter((id) => source.has(id) && !storedDeleted.has(id) && stored !== undefined)
    return { channelId, live, deletedButLive }
  })

/** Waits until the engine stored `pts` for the channel. */
export const awaitStatePts = (setup: SourceSetup, channelId: number, pts: number) =>
  Effect.gen(function*() {
    while (true) {
      const rows = yield* query<{ pts: number }>(setup.database, `SELECT pts FROM telegram_channel_state WHERE channel_id = ${channelId}`)
      if ((rows[0]?.pts ?? 0) >= pts) return
      yield* Effect.sleep("100 millis")
    }
  }).pipe(Effect.timeout("15 seconds"))
