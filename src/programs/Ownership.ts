/**
 * What this process is for each configured account, for /health/ready and
 * the `gateway_role{account}` metric: the owner (connected with the
 * account's key), a standby (with who owns it and since when), failed
 * (Telegram refused the session while this process owned it: readiness drops
 * at once), or needs-login (Telegram refused the session this process holds
 * for it, so it does not take the account: `account_login_needed` is 1 and
 * readiness says degraded). Written by the account loops
 * (src/programs/AccountOwner.ts).
 */
import { Context, Effect, Layer, Metric, Ref } from "effect"
import * as Metrics from "../services/Metrics.ts"
import type { TelegramSource } from "../services/TelegramSource.ts"

export interface AccountRole {
  readonly account: string
  readonly role: "owner" | "standby" | "failed" | "needs-login"
  /** When this process took this role. */
  readonly since: string
  /** The lease holder as last seen (this process when owner); null when nobody holds it. */
  readonly owner: string | null
  readonly ownerSince: string | null
  readonly epoch: number | null
  readonly detail?: string
  /** Telegram refused the session: why and when (what `telegram-gateway login` clears). */
  readonly loginNeeded?: { readonly reason: string; readonly since: string }
}

export class Ownership extends Context.Service<Ownership, {
  readonly set: (role: AccountRole) => Effect.Effect<void>
  readonly roles: Effect.Effect<ReadonlyArray<AccountRole>>
  /** Accounts this process owns now. */
  readonly owned: Effect.Effect<number>
  /** The Telegram source of an owned account, while it runs (undefined removes it). */
  readonly setSource: (account: string, source: TelegramSource["Service"] | undefined) => Effect.Effect<void>
  /** The sources of the accounts this process owns, for readiness. */
  readonly sources: Effect.Effect<ReadonlyArray<TelegramSource["Service"]>>
}>()("telegram-gateway/Ownership") {}

const roleValue = { owner: 1, standby: 0, failed: 0, "needs-login": 0 } as const

export const make = Effect.gen(function*() {
  const state = yield* Ref.make(new Map<string, AccountRole>())
  const running = yield* Ref.make(new Map<string, TelegramSource["Service"]>())
  const set = (role: AccountRole) =>
    Ref.update(state, (roles) => new Map(roles).set(role.account, role)).pipe(
      Effect.andThen(Metric.update(Metric.withAttributes(Metrics.gatewayRole, { account: role.account }), roleValue[role.role])),
      Effect.andThen(Metric.update(
        Metric.withAttributes(Metrics.accountLoginNeeded, { account: role.account }),
        role.loginNeeded === undefined ? 0 : 1
      ))
    )
  return Ownership.of({
    set,
    roles: Ref.get(state).pipe(Effect.map((roles) => [...roles.values()].sort((a, b) => a.account.localeCompare(b.account)))),
    owned: Ref.get(state).pipe(Effect.map((roles) => [...roles.values()].filter((role) => role.role === "owner").length)),
    setSource: (account, source) =>
      Ref.update(running, (sources) => {
        const next = new Map(sources)
        if (source === undefined) next.delete(account)
        else next.set(account, source)
        return next
      }),
    sources: Ref.get(running).pipe(Effect.map((sources) => [...sources.values()]))
  })
})

export const layer = Layer.effect(Ownership, make)
