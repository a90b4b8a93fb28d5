/**
 * Exclusive ownership of Telegram accounts across processes and hosts: a
 * lease per account with an expiry and an epoch that grows with every
 * acquisition (docs/architecture.md, "High availability"). Only the holder of
 * an account's lease may connect to Telegram with its key; every write of
 * update state carries the holder's epoch, and the database refuses a stale
 * one (`LeaseFenced`).
 */
import { Context, type Effect, Schema } from "effect"
import { describeCause } from "../domain/DescribeCause.ts"

/** An account name as configured: lower case letters, digits, `_` and `-`. */
export const AccountName = Schema.String.check(Schema.isPattern(/^[a-z0-9][a-z0-9_-]{0,62}$/))

/** This process: unique per start, so a restarted process never mistakes an old lease for its own. */
export interface Member {
  readonly id: string
  readonly host: string
  readonly pid: number
}

/** A lease this process holds. */
export interface Lease {
  readonly account: string
  readonly epoch: number
  readonly acquiredAt: Date
  /** The process whose lease expired while it held the account (it died, froze or was cut off); null when it was free. */
  readonly tookOverFrom: string | null
}

/** Telegram refused the account's session: nobody takes it with that key until a new login. */
export interface LoginNeeded {
  /** The fatal error (AUTH_KEY_UNREGISTERED, SESSION_REVOKED, USER_DEACTIVATED, AUTH_KEY_DUPLICATED). */
  readonly reason: string
  /** The refused key's fingerprint (src/layers/SessionFile.ts, `keyId`). */
  readonly keyId: string
  readonly at: Date
  /** The epoch of the owner that was refused. */
  readonly epoch: number
}

/** Who holds an account now, as the database says. */
export interface Holder {
  readonly account: string
  readonly owner: string | null
  readonly epoch: number
  readonly acquiredAt: Date | null
  readonly expiresAt: Date
  /** True while the lease has not expired (by the database's clock). */
  readonly live: boolean
  readonly loginNeeded: LoginNeeded | null
}

export class LeaseError extends Schema.TaggedError<LeaseError>()("LeaseError", {
  operation: Schema.String,
  cause: Schema.Defect()
}) {
  override get message(): string {
    return `Lease ${this.operation} failed: ${describeCause(this.cause)}`
  }
}

/** The lease is no longer ours: it expired, or another process took it at a higher epoch. */
export class LeaseLost extends Schema.TaggedError<LeaseLost>()("LeaseLost", {
  account: Schema.String,
  epoch: Schema.Number,
  reason: Schema.String
}) {
  override get message(): string {
    return `lost the lease of account ${this.account} (epoch ${this.epoch}): ${this.reason}`
  }
}

/** The database refused a write made under a stale epoch (sql/0017_lease_fence.up.sql). */
export class LeaseFenced extends Schema.TaggedError<LeaseFenced>()("LeaseFenced", {
  account: Schema.String,
  epoch: Schema.Number,
  detail: Schema.String
}) {
  override get message(): string {
    return `write refused for account ${this.account} under epoch ${this.epoch}: ${this.detail}`
  }
}

export class AccountLeases extends Context.Service<AccountLeases, {
  readonly member: Member
  /**
   * Takes the account if its lease is free or expired and the session key
   * `keyId` is not the one Telegram refused: a new epoch, or `undefined`.
   */
  readonly acquire: (account: string, keyId: string) => Effect.Effect<Lease | undefined, LeaseError>
  /** Extends the lease by the lease time; `LeaseLost` when it expired or moved on. */
  readonly renew: (lease: Lease) => Effect.Effect<void, LeaseError | LeaseLost>
  /** Gives the account up at once so a standby takes it on its next poll. */
  readonly release: (lease: Lease) => Effect.Effect<void, LeaseError>
  readonly holders: (accounts: ReadonlyArray<string>) => Effect.Effect<ReadonlyArray<Holder>, LeaseError>
  /**
   * Records that Telegram refused the key `keyId` with `reason`, under this
   * lease's epoch: false when the lease moved on (a stale owner marks nothing).
   */
  readonly markLoginNeeded: (lease: Lease, reason: string, keyId: string) => Effect.Effect<boolean, LeaseError>
  /** After a new login: the account may be taken again. False when it was not marked. */
  readonly clearLoginNeeded: (account: string) => Effect.Effect<boolean, LeaseError>
  /** Marks this process as up for another lease time. */
  readonly heartbeat: Effect.Effect<void, LeaseError>
  /** Processes whose heartbeat has not expired, this one included. */
  readonly liveMembers: Effect.Effect<number, LeaseError>
  /** Removes this process from the members at a clean stop. */
  readonly leave: Effect.Effect<void, LeaseError>
}>()("telegram-gateway/AccountLeases") {}

/**
 * The lease under which the current fiber writes update state; unset outside
 * an owned account (single-process tools and tests write unfenced).
 */
export const LeaseFence = Context.Reference<{ readonly account: string; readonly epoch: number } | undefined>(
  "telegram-gateway/LeaseFence",
  { defaultValue: () => undefined }
)

/**
 * Whether this process may send anything with the account's key right now:
 * checked synchronously before every MTProto packet leaves (the lease's local
 * deadline, on the monotonic clock). By default always true (login, tools).
 */
export const KeyGuard = Context.Reference<() => boolean>("telegram-gateway/KeyGuard", {
  defaultValue: () => () => true
})
