/**
 * One configured account in this process: stand by until its lease is free,
 * take it, connect to Telegram with its key and feed ingestion, and give it
 * up when the lease is lost, the fleet rebalances or the process stops.
 *
 * While standing by nothing touches the key. While owning:
 * - a lock on the session file (SessionFiles.lock, a flock) keeps a
 *   second process on the same host out whatever the database says;
 * - the lease is renewed every `ha.renewInterval`; its local deadline is the
 *   start of the last successful renewal plus `ha.leaseTtl` minus a safety
 *   margin, on the monotonic clock. `KeyGuard` refuses every MTProto packet
 *   past it (a process that froze and woke up sends nothing), and the
 *   account steps down when it passes;
 * - every write of update state carries the lease's epoch (`LeaseFence`) and
 *   the database refuses a stale one (sql/0017_lease_fence.up.sql).
 * Stepping down drains ingestion (so the read progress of what was accepted
 * is saved), closes the source, then releases the lease so a standby takes
 * it on its next poll.
 *
 * When Telegram refuses the session (TelegramFatal), the owner marks the
 * account as needing a login in PostgreSQL under its epoch, before it lets
 * the lease go, naming the refused key by its fingerprint. A standby whose
 * session file holds that same key does not take the account (it would be
 * refused in turn): it reports `needs-login` until `telegram-gateway login`
 * clears the mark, or until it is given a session file with another key.
 */
import { Cause, Clock, Deferred, Duration, Effect, Exit, Metric, Schedule, Scope, Stream } from "effect"
import { AccountSources } from "../services/AccountSources.ts"
import { AccountLeases, KeyGuard, type Lease, LeaseFence, LeaseLost } from "../services/AccountLeases.ts"
import { HaConfig, IngestConfig } from "../services/GatewayConfig.ts"
import * as Metrics from "../services/Metrics.ts"
import type { TelegramFatal } from "../services/TelegramSource.ts"
import { SessionFiles } from "../services/SessionFiles.ts"
import { OwnerEpoch } from "../services/UpdateState.ts"
import { type AccountSpec, DEFAULT_ACCOUNT } from "./Accounts.ts"
import { makeDatabaseWait } from "./DatabaseWait.ts"
import type { Fleet } from "./Fleet.ts"
import { Ingestion } from "./Ingestion.ts"
import { Ownership } from "./Ownership.ts"

/** Stop sending this long before the lease would expire in the database. */
const SAFETY_MARGIN = Duration.seconds(1)

/**
 * The longest wait between two reads of the lease while PostgreSQL does not
 * answer: the account is taken at most this long after the database returns.
 */
export const DATABASE_RETRY_MAX_DELAY = Duration.seconds(10)

type StepDown = "lost" | "rebalanced"

const iso = (date: Date | null) => (date === null ? null : date.toISOString())

/** The command that gives the account a new session. */
export const loginCommand = (account: string) =>
  account === DEFAULT_ACCOUNT ? "telegram-gateway login" : `telegram-gateway login --account ${account}`

/** Waits until ingestion has committed everything it accepted, or the deadline. */
const drained = (deadline: Duration.Duration) =>
  Effect.gen(function*() {
    const { pending } = yield* Ingestion
    yield* pending.pipe(
      Effect.repeat({ until: (count) => count === 0, schedule: Schedule.spaced("50 millis") }),
      Effect.timeoutOption(deadline)
    )
  })

export const runAccount = (spec: AccountSpec, fleet: Fleet) =>
  Effect.gen(function*() {
    const leases = yield* AccountLeases
    const clock = yield* Clock.Clock
    /** Wall-clock milliseconds, for cool-downs and the times shown in /health/ready. */
    const now = () => clock.currentTimeMillisUnsafe()
    const isoNow = () => new Date(now()).toISOString()
    /** Monotonic milliseconds, for the lease's local deadline: a wall-clock jump must not move it. */
    const monotonic = () => Number(clock.monotonicTimeNanosUnsafe()) / 1_000_000
    const sessions = yield* SessionFiles
    const sources = yield* AccountSources
    const ownership = yield* Ownership
    const ha = yield* HaConfig
    const ingest = yield* IngestConfig
    const account = spec.name
    const attributes = { account }
    /** Not before this (ms since epoch): after a hand-over, leave the account to the others for a while. */
    let cooldownUntil = 0
    /** The refusal (its time and key) this process last reported, so each is logged once. */
    let reportedRefusal: string | undefined
    // Every series of this account from the first scrape, so increase() sees the first event.
    for (
      const counter of [
        Metrics.leaseAcquired,
        Metrics.leaseTakeovers,
        Metrics.leaseRenewFailures,
        Metrics.leasePollFailures,
        Metrics.loginMarkFailures
      ]
    ) {
      yield* Metric.value(Metric.withAttributes(counter, attributes))
    }
    /** A standby cannot read or take the lease while PostgreSQL is unreachable (at start, or later): it waits, backing off. */
    const database = yield* makeDatabaseWait({
      what: `account ${account}`,
      consequence: "the account is not taken and nothing is read from Telegram",
      interval: ha.pollInterval,
      maxDelay: DATABASE_RETRY_MAX_DELAY,
      failures: Metrics.leasePollFailures,
      attributes,
      observe: (yield* Ingestion).observeDatabase
    })

    /** The fingerprint of the key in the account's session file now (an operator may have replaced the file). */
    const currentKeyId = sessions.keyId(spec.config.sessionFile).pipe(
      Effect.catch((error) => Effect.logWarning(`reading the session file failed, will retry: ${error.message}`).pipe(Effect.as(undefined)))
    )

    const standBy = Effect.gen(function*() {
      const since = isoNow()
      let freeSince: number | undefined
      while (true) {
        const holders = yield* leases.holders([account]).pipe(
          Effect.tap(() => database.answered),
          Effect.catch((error) => database.failed("reading the lease", error).pipe(Effect.as(undefined)))
        )
        if (holders === undefined) {
          yield* ownership.set({
            account,
            role: "standby",
            since,
            owner: null,
            ownerSince: null,
            epoch: null,
            detail: database.waiting() ?? "waiting for PostgreSQL"
          })
          freeSince = undefined
          yield* Effect.sleep(database.delay())
          continue
        }
        const holder = holders[0]
        const refused = holder?.loginNeeded ?? null
        if (refused === null && reportedRefusal !== undefined) {
          reportedRefusal = undefined
          yield* Effect.logInfo(`account ${account} was logged in again: it may be taken`)
        }
        if (refused !== null) {
          const keyId = yield* currentKeyId
          const mark = `${refused.at.toISOString()} ${refused.keyId}`
          if (keyId === undefined || keyId === refused.keyId) {
            yield* ownership.set({
              account,
              role: "needs-login",
              since,
              owner: holder?.live === true ? holder.owner : null,
              ownerSince: holder?.live === true ? iso(holder.acquiredAt) : null,
              epoch: holder?.epoch ?? null,
              loginNeeded: { reason: refused.reason, since: refused.at.toISOString() }
            })
            if (reportedRefusal !== mark && keyId !== undefined) {
              reportedRefusal = mark
              yield* Effect.logError(
                `account ${account}: Telegram refused its session with ${refused.reason} at ${refused.at.toISOString()} (owner at epoch ${refused.epoch}); this process holds the same session and does not take the account. Run '${loginCommand(account)}' and give every host that may own it the new session file`
              )
            }
            freeSince = undefined
            yield* Effect.sleep(ha.pollInterval)
            continue
          }
          if (reportedRefusal !== mark) {
            reportedRefusal = mark
            yield* Effect.logInfo(`account ${account}: Telegram refused an earlier session (${refused.reason}); this process holds a new one and may take the account`)
          }
        }
        yield* ownership.set({
          account,
          role: "standby",
          since,
          owner: holder?.live === true ? holder.owner : null,
          ownerSince: holder?.live === true ? iso(holder.acquiredAt) : null,
          epoch: holder?.epoch ?? null
        })
        const free = holder === undefined || !holder.live
        freeSince = free ? freeSince ?? now() : undefined
        // Take a free account while under this process's share, or any that nobody else took for two polls.
        const share = yield* fleet.fairShare
        const owned = yield* ownership.owned
        const unclaimed = freeSince !== undefined && now() - freeSince >= 2 * Duration.toMillis(ha.pollInterval)
        if (free && now() >= cooldownUntil && (owned < share || unclaimed)) {
          const keyId = yield* currentKeyId
          const lease = keyId === undefined ? undefined : yield* leases.acquire(account, keyId).pipe(
            Effect.tap(() => database.answered),
            Effect.catch((error) => database.failed("taking the lease", error).pipe(Effect.as(undefined)))
          )
          if (lease !== undefined && keyId !== undefined) {
            if (lease.tookOverFrom !== null) {
              yield* Metric.update(Metric.withAttributes(Metrics.leaseTakeovers, attributes), 1)
              yield* Effect.logWarning(
                `took over account ${account} at epoch ${lease.epoch}: the lease of ${lease.tookOverFrom} expired while it held the account (it died, froze or lost the database)`
              )
            }
            return { lease, keyId }
          }
        }
        yield* Effect.sleep(database.delay())
      }
    })

    /**
     * Marks the account as needing a login, under this lease's epoch, before
     * the lease is let go: so no standby with the same key takes it.
     */
    const markRefused = (lease: Lease, fatal: TelegramFatal, keyId: string) =>
      leases.markLoginNeeded(lease, fatal.reason, keyId).pipe(
        Effect.retry({ times: 3, schedule: Schedule.spaced("500 millis") }),
        Effect.flatMap((marked) =>
          marked
            ? Effect.logError(
              `account ${account}: Telegram refused the session with ${fatal.reason}; marked in PostgreSQL as needing a login (epoch ${lease.epoch}), so no process takes it with this session. Run '${loginCommand(account)}' and give every host that may own it the new session file`
            )
            : Effect.logWarning(`account ${account}: Telegram refused the session with ${fatal.reason}, but the lease moved on (epoch ${lease.epoch}): not marked`)
        ),
        Effect.catch((error) =>
          Metric.update(Metric.withAttributes(Metrics.loginMarkFailures, attributes), 1).pipe(
            Effect.andThen(Effect.logError(
              `account ${account}: Telegram refused the session with ${fatal.reason}, and marking it in PostgreSQL failed (${error.message}): a standby may take it and be refused in turn`
            ))
          )
        )
      )

    /** Owns the account until the lease is lost, the fleet asks for it, or a fatal session error. */
    const own = (lease: Lease, keyId: string) =>
      Effect.gen(function*() {
        const scope = yield* Scope.make()
        const ttl = Duration.toMillis(ha.leaseTtl) - Duration.toMillis(SAFETY_MARGIN)
        let validUntil = monotonic() + ttl
        const mayUse = () => monotonic() < validUntil
        const stepDown = yield* Deferred.make<StepDown>()
        let reason = "stopped" as StepDown | "stopped" | "fatal" | "locked"

        const body = Effect.gen(function*() {
          yield* Metric.update(Metric.withAttributes(Metrics.leaseAcquired, attributes), 1)
          yield* Effect.logInfo(`owner of account ${account} at epoch ${lease.epoch}`)
          yield* Scope.addFinalizer(scope, leases.release(lease).pipe(
            Effect.timeoutOption("2 seconds"),
            Effect.catch((error) => Effect.logWarning(`releasing the lease failed (it expires by itself): ${error.message}`)),
            Effect.andThen(Effect.suspend(() =>
              Metric.update(Metric.withAttributes(Metrics.leaseReleased, { account, reason }), 1).pipe(
                Effect.andThen(Effect.logInfo(`gave up account ${account} (epoch ${lease.epoch}): ${reason}`))
              )
            ))
          ))
          yield* sessions.lock(spec.config.sessionFile).pipe(Scope.provide(scope))

          // Renewal: each success moves the local deadline; a loss or a passed deadline steps down.
          yield* Effect.gen(function*() {
            while (true) {
              yield* Effect.sleep(ha.renewInterval)
              const started = monotonic()
              if (started >= validUntil) return yield* new LeaseLost({ account, epoch: lease.epoch, reason: "not renewed before its deadline" })
              const renewed = yield* leases.renew(lease).pipe(
                Effect.as(true),
                Effect.catchTag("LeaseError", (error) =>
                  Metric.update(Metric.withAttributes(Metrics.leaseRenewFailures, attributes), 1).pipe(
                    Effect.andThen(Effect.logWarning(`renewing the lease failed: ${error.message}; stepping down in ${Math.max(0, Math.round(validUntil - monotonic()))} ms unless a renewal succeeds`)),
                    Effect.as(false)
                  ))
              )
              if (renewed) validUntil = started + ttl
            }
          }).pipe(
            Effect.raceFirst(Effect.suspend(() => Effect.sleep(Duration.millis(Math.max(0, validUntil - monotonic())))).pipe(
              Effect.repeat({ until: () => monotonic() >= validUntil }),
              Effect.andThen(Effect.fail(new LeaseLost({ account, epoch: lease.epoch, reason: "not renewed before its deadline" })))
            )),
            Effect.catchTag("LeaseLost", (lost) =>
              Effect.logError(`${lost.message}: stepping down`).pipe(Effect.andThen(Deferred.succeed(stepDown, "lost")))),
            Effect.forkIn(scope)
          )

          // Rebalancing: hand one account over when this process holds more than its share.
          yield* Effect.gen(function*() {
            while (true) {
              yield* Effect.sleep(ha.rebalanceInterval)
              if (yield* fleet.claimHandover) return yield* Deferred.succeed(stepDown, "rebalanced")
            }
          }).pipe(Effect.forkIn(scope))

          const source = yield* sources.open(spec.config).pipe(Scope.provide(scope))
          yield* ownership.setSource(account, source)
          yield* Scope.addFinalizer(scope, ownership.setSource(account, undefined))
          yield* ownership.set({
            account,
            role: "owner",
            since: isoNow(),
            owner: leases.member.id,
            ownerSince: lease.acquiredAt.toISOString(),
            epoch: lease.epoch
          })
          const { ingestBatch } = yield* Ingestion
          const received = source.events.pipe(Stream.runForEach(ingestBatch), Effect.andThen(Effect.never))
          return yield* Effect.raceFirst(received, Deferred.await(stepDown))
        }).pipe(
          Effect.provideService(LeaseFence, { account, epoch: lease.epoch }),
          Effect.provideService(OwnerEpoch, Effect.succeed(BigInt(lease.epoch))),
          Effect.provideService(KeyGuard, mayUse)
        )

        return yield* Effect.uninterruptibleMask((restore) =>
          Effect.gen(function*() {
            let refusal: TelegramFatal | undefined
            const exit = yield* Effect.exit(restore(body.pipe(
              Effect.catchTag("SessionFileLocked", (locked) =>
                Effect.logError(`${locked.message}; standing by`).pipe(Effect.as("locked" as const))),
              Effect.catchTag("TelegramFatal", (fatal) => {
                refusal = fatal
                return markRefused(lease, fatal, keyId).pipe(Effect.andThen(Effect.fail(fatal)))
              })
            )))
            if (Exit.isSuccess(exit)) reason = exit.value
            else if (!Exit.hasInterrupts(exit)) reason = "fatal"
            if (reason === "fatal") {
              const failedAt = isoNow()
              yield* ownership.set({
                account,
                role: "failed",
                since: failedAt,
                owner: leases.member.id,
                ownerSince: lease.acquiredAt.toISOString(),
                epoch: lease.epoch,
                detail: Exit.isFailure(exit) ? String(Cause.squash(exit.cause)) : "failed",
                ...(refusal === undefined ? {} : { loginNeeded: { reason: refusal.reason, since: failedAt } })
              })
            }
            // Drain what was accepted (its read progress is saved by the source's finalizer), then close.
            yield* drained(ingest.shutdownTimeout)
            yield* Scope.close(scope, Exit.void)
            if (reason === "rebalanced" || reason === "locked") cooldownUntil = now() + 3 * Duration.toMillis(ha.leaseTtl)
            return yield* exit
          })
        )
      })

    while (true) {
      const { keyId, lease } = yield* standBy
      yield* own(lease, keyId)
    }
  }).pipe(Effect.annotateLogs("account", spec.name))

export type { TelegramFatal }
