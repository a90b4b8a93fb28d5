/** The server side of the access guards declared in Security.ts. */
import { Effect, Layer, type Redacted } from "effect"
import type { ApiScope } from "../../services/ApiConfig.ts"
import { ApiKeys } from "./ApiKeys.ts"
import { AckAccess, AdminAccess, Caller, ReadAccess } from "./Security.ts"

const guard = (scope: ApiScope) =>
  Effect.gen(function*() {
    const keys = yield* ApiKeys
    return {
      apiKey: <A, E, R>(httpEffect: Effect.Effect<A, E, R>, options: { readonly credential: Redacted.Redacted<string> }) =>
        keys.authorize(options.credential, scope).pipe(
          Effect.flatMap((entry) =>
            httpEffect.pipe(Effect.provideService(Caller, entry), Effect.annotateLogs({ apiKey: entry.name }))
          )
        )
    }
  })

export const layer = Layer.mergeAll(
  Layer.effect(ReadAccess, Effect.map(guard("read"), ReadAccess.of)),
  Layer.effect(AckAccess, Effect.map(guard("ack"), AckAccess.of)),
  Layer.effect(AdminAccess, Effect.map(guard("admin"), AdminAccess.of))
)
