/**
 * This process among the gateway processes that are up: it renews its
 * member row with its leases, and shares the accounts out evenly. Each
 * process aims at ceil(accounts / live processes): a standby account loop
 * takes a free account only while this process holds less than that, and
 * when a process joins, those above it hand one account over per
 * `ha.rebalanceInterval` (src/programs/AccountOwner.ts).
 */
import { Clock, Duration, Effect, Ref, Schedule } from "effect"
import { AccountLeases } from "../services/AccountLeases.ts"
import { HaConfig } from "../services/GatewayConfig.ts"
import { makeDatabaseWait } from "./DatabaseWait.ts"
import { Ingestion } from "./Ingestion.ts"
import { Ownership } from "./Ownership.ts"

export interface Fleet {
  /** How many accounts this process should own now. */
  readonly fairShare: Effect.Effect<number>
  /** True (once per rebalance interval) when this process owns more than its share and one account should move. */
  readonly claimHandover: Effect.Effect<boolean>
}

/** Scoped: heartbeats until the scope closes, then leaves the fleet. */
export const makeFleet = (accounts: number) =>
  Effect.gen(function*() {
    const leases = yield* AccountLeases
    const ownership = yield* Ownership
    const ha = yield* HaConfig
    const members = yield* Ref.make(1)
    const lastHandover = yield* Ref.make(0)

    // Logged once per outage, not on every beat; the accounts' waits count the failures (lease_poll_failures_total).
    const database = yield* makeDatabaseWait({
      what: "the fleet heartbeat",
      consequence: "the fleet's size is not updated",
      interval: ha.renewInterval,
      maxDelay: ha.renewInterval,
      observe: (yield* Ingestion).observeDatabase
    })
    const beat = leases.heartbeat.pipe(
      Effect.andThen(leases.liveMembers),
      Effect.flatMap((live) => Ref.set(members, Math.max(1, live))),
      Effect.andThen(database.answered),
      Effect.catch((error) => database.failed("the heartbeat", error))
    )
    yield* beat
    yield* beat.pipe(Effect.repeat(Schedule.spaced(ha.renewInterval)), Effect.forkScoped)
    yield* Effect.addFinalizer(() => leases.leave.pipe(Effect.timeoutOption("2 seconds"), Effect.ignore))

    const fairShare = Ref.get(members).pipe(Effect.map((live) => Math.ceil(accounts / live)))
    const claimHandover = Effect.gen(function*() {
      const share = yield* fairShare
      const owned = yield* ownership.owned
      if (owned <= share) return false
      const now = yield* Clock.currentTimeMillis
      return yield* Ref.modify(lastHandover, (last) =>
        now - last < Duration.toMillis(ha.rebalanceInterval) ? [false, last] : [true, now])
    })
    return { fairShare, claimHandover } satisfies Fleet
  })
