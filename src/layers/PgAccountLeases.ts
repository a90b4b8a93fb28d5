/**
 * AccountLeases on PostgreSQL (sql/0016_account_leases.up.sql): one row per
 * account, every decision a single statement judged by the database's clock,
 * so it works through PgBouncer in transaction mode and the hosts' clocks
 * never have to agree. Acquisition takes a free or expired row and adds one
 * to its epoch; renewal only extends a row that is still ours and unexpired.
 * A row whose session Telegram refused (sql/0035) is not taken with the
 * refused key.
 */
import { Duration, Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { randomBytes } from "node:crypto"
import { hostname } from "node:os"
import { AccountLeases, type Holder, type Lease, LeaseError, LeaseLost, type Member } from "../services/AccountLeases.ts"
import { DatabaseConfig, HaConfig } from "../services/GatewayConfig.ts"
import * as PgClient from "./PgClient.ts"

interface HolderRow {
  readonly account: string
  readonly owner: string | null
  readonly epoch: string
  readonly acquired_at: Date | null
  readonly expires_at: Date
  readonly live: boolean
  readonly login_needed_reason: string | null
  readonly login_needed_key: string | null
  readonly login_needed_at: Date | null
  readonly login_needed_epoch: string | null
}

export const makeMember = (): Member => {
  const host = hostname()
  return { id: `${host}:${process.pid}:${randomBytes(4).toString("hex")}`, host, pid: process.pid }
}

export const make = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const { statementTimeout } = yield* DatabaseConfig
  const ha = yield* HaConfig
  const member = makeMember()
  const ttl = `${Duration.toMillis(ha.leaseTtl)} milliseconds`

  const run = (operation: string) => <A, E>(effect: Effect.Effect<A, E>) =>
    effect.pipe(
      Effect.mapError((cause) => new LeaseError({ operation, cause })),
      Effect.timeoutOrElse({
        duration: statementTimeout,
        orElse: () => Effect.fail(new LeaseError({ operation, cause: new Error(`no answer within ${Duration.format(statementTimeout)}`) }))
      }),
      Effect.withSpan(`AccountLeases.${operation}`)
    )

  // `previous` reads the row as the statement found it: an owner still named
  // there held the lease until it expired (a release clears it).
  const acquire = (account: string, keyId: string) =>
    sql<{ readonly epoch: string; readonly acquired_at: Date; readonly previous_owner: string | null }>`
      WITH previous AS (SELECT owner FROM account_leases WHERE account = ${account})
      INSERT INTO account_leases (account, owner, epoch, acquired_at, renewed_at, expires_at)
      VALUES (${account}, ${member.id}, 1, now(), now(), now() + ${ttl}::interval)
      ON CONFLICT (account) DO UPDATE SET
        owner = EXCLUDED.owner, epoch = account_leases.epoch + 1,
        acquired_at = now(), renewed_at = now(), expires_at = EXCLUDED.expires_at
      WHERE account_leases.expires_at <= now() AND account_leases.login_needed_key IS DISTINCT FROM ${keyId}
      RETURNING epoch::text AS epoch, acquired_at, (SELECT owner FROM previous) AS previous_owner`.pipe(
      Effect.map((rows): Lease | undefined => {
        const row = rows[0]
        return row === undefined
          ? undefined
          : { account, epoch: Number(row.epoch), acquiredAt: row.acquired_at, tookOverFrom: row.previous_owner }
      }),
      run("acquire")
    )

  const renew = (lease: Lease) =>
    sql`
      UPDATE account_leases SET renewed_at = now(), expires_at = now() + ${ttl}::interval
      WHERE account = ${lease.account} AND owner = ${member.id} AND epoch = ${lease.epoch} AND expires_at > now()
      RETURNING 1`.pipe(
      run("renew"),
      Effect.flatMap((rows) =>
        rows.length === 1
          ? Effect.void
          : Effect.fail(new LeaseLost({ account: lease.account, epoch: lease.epoch, reason: "it expired or another process took it" }))
      )
    )

  const release = (lease: Lease) =>
    sql`
      UPDATE account_leases SET owner = NULL, expires_at = now()
      WHERE account = ${lease.account} AND owner = ${member.id} AND epoch = ${lease.epoch}`.pipe(Effect.asVoid, run("release"))

  const holders = (accounts: ReadonlyArray<string>) =>
    sql<HolderRow>`
      SELECT account, owner, epoch::text AS epoch, acquired_at, expires_at, expires_at > now() AS live,
        login_needed_reason, login_needed_key, login_needed_at, login_needed_epoch::text AS login_needed_epoch
      FROM account_leases WHERE account IN ${sql.in(accounts)}`.pipe(
      Effect.map((rows) =>
        rows.map((row): Holder => ({
          account: row.account,
          owner: row.owner,
          epoch: Number(row.epoch),
          acquiredAt: row.acquired_at,
          expiresAt: row.expires_at,
          live: row.live,
          loginNeeded: row.login_needed_reason === null || row.login_needed_key === null || row.login_needed_at === null
            ? null
            : {
              reason: row.login_needed_reason,
              keyId: row.login_needed_key,
              at: row.login_needed_at,
              epoch: Number(row.login_needed_epoch)
            }
        }))
      ),
      run("holders")
    )

  // Fenced like a write of update state: only the lease's current holder, at its epoch.
  const markLoginNeeded = (lease: Lease, reason: string, keyId: string) =>
    sql`
      UPDATE account_leases SET login_needed_reason = ${reason}, login_needed_key = ${keyId},
        login_needed_at = now(), login_needed_epoch = ${lease.epoch}
      WHERE account = ${lease.account} AND owner = ${member.id} AND epoch = ${lease.epoch}
      RETURNING 1`.pipe(Effect.map((rows) => rows.length === 1), run("markLoginNeeded"))

  const clearLoginNeeded = (account: string) =>
    sql`
      UPDATE account_leases SET login_needed_reason = NULL, login_needed_key = NULL,
        login_needed_at = NULL, login_needed_epoch = NULL
      WHERE account = ${account} AND login_needed_reason IS NOT NULL
      RETURNING 1`.pipe(Effect.map((rows) => rows.length === 1), run("clearLoginNeeded"))

  const heartbeat = sql`
    INSERT INTO gateway_members (member, host, pid, expires_at)
    VALUES (${member.id}, ${member.host}, ${member.pid}, now() + ${ttl}::interval)
    ON CONFLICT (member) DO UPDATE SET expires_at = EXCLUDED.expires_at`.pipe(Effect.asVoid, run("heartbeat"))

  const liveMembers = sql<{ readonly live: string }>`
    SELECT count(*)::text AS live FROM gateway_members WHERE expires_at > now()`.pipe(
    Effect.map((rows) => Number(rows[0]?.live ?? 0)),
    run("liveMembers")
  )

  const leave = sql`DELETE FROM gateway_members WHERE member = ${member.id} OR expires_at < now() - interval '1 day'`.pipe(
    Effect.asVoid,
    run("leave")
  )

  return AccountLeases.of({
    member,
    acquire,
    renew,
    release,
    holders,
    markLoginNeeded,
    clearLoginNeeded,
    heartbeat,
    liveMembers,
    leave
  })
})

/** Needs a `SqlClient`. */
export const layerNoDeps = Layer.effect(AccountLeases, make)

/** On the PgBouncer pool of `database.url`: every statement stands alone. */
export const layer = layerNoDeps.pipe(Layer.provide(PgClient.layer))

/** The SQLSTATE that lease_fence raises (sql/0017_lease_fence.up.sql). */
const FENCED = "TGF01"

/** What PostgreSQL said when lease_fence refused a write (a stale epoch); undefined for any other failure. */
export const fencedDetail = (cause: unknown): string | undefined => {
  const seen = new Set<unknown>()
  const visit = (value: unknown): string | undefined => {
    if (typeof value !== "object" || value === null || seen.has(value)) return undefined
    seen.add(value)
    const fields = value as { readonly code?: unknown; readonly message?: unknown; readonly reason?: unknown; readonly cause?: unknown }
    if (fields.code === FENCED) return typeof fields.message === "string" ? fields.message : "fenced"
    return visit(fields.reason) ?? visit(fields.cause)
  }
  return visit(cause)
}
