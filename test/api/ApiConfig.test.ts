/** API key configuration: both forms, consumers, and errors that never echo a secret. */
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Effect } from "effect"
import { ApiConfig, consumersOf } from "../../src/services/ApiConfig.ts"

const hash = "ab".repeat(32)
const secret = "9f8e7d6c5b4a39281706f5e4d3c2b1a0SECRET"
const fromEnv = (env: Record<string, string>) => ApiConfig.parse(ConfigProvider.fromEnv({ env }).pipe(ConfigProvider.constantCase))
const fromJson = (keys: unknown) => ApiConfig.parse(ConfigProvider.fromUnknown({ api: { keys } }))

describe("API key configuration", () => {
  it.effect("reads entries with and without consumers from API_KEYS and from the JSON file", () =>
    Effect.gen(function*() {
      const env = yield* fromEnv({ API_KEYS: `billing:${hash}:read+ack, ops:${hash.toUpperCase()}:admin:desk-a+desk-b` })
      assert.deepStrictEqual(env.keys.map((entry) => [entry.name, entry.scopes, consumersOf(entry)]), [
        ["billing", ["read", "ack"], ["billing"]],
        ["ops", ["admin"], ["desk-a", "desk-b"]]
      ])
      const json = yield* fromJson([{ name: "worker", sha256: hash, scopes: ["ack"], consumers: ["w1"] }])
      assert.deepStrictEqual(consumersOf(json.keys[0]!), ["w1"])
      assert.deepStrictEqual((yield* fromEnv({})).keys, [])
    }))

  it.effect("names a bad entry by its position and never shows its content", () =>
    Effect.gen(function*() {
      for (
        const attempt of [
          fromEnv({ API_KEYS: secret }),
          fromEnv({ API_KEYS: `billing:${hash}:read,${secret}=:${hash}:read` }),
          fromEnv({ API_KEYS: `billing:${hash}:read,ops:${secret}:admin` }),
          fromJson([{ name: "ops", sha256: secret, scopes: ["admin"] }])
        ]
      ) {
        const message = String(yield* Effect.flip(attempt))
        assert.match(message, /api\.keys: entry [12] is not name:sha256hex/)
        assert.notInclude(message, "SECRET")
        assert.notInclude(message, "9f8e7d6c")
      }
    }))
})
