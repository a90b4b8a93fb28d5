import { assert, describe, it } from "@effect/vitest"
import { decodeText, encodeText, escapeUnsafe, escapeUnsafeDeep } from "../../src/domain/PgSafeText.ts"

describe("PgSafeText", () => {
  it("escapes NUL and lone surrogates, and leaves a surrogate pair alone", () => {
    assert.strictEqual(escapeUnsafe("a\u0000b"), "a\\u0000b")
    assert.strictEqual(escapeUnsafe("high \ud800 low \udc00"), "high \\ud800 low \\udc00")
    assert.strictEqual(escapeUnsafe("pair 😀"), "pair 😀")
  })

  it("stores text with unsafe characters as its JSON escape and reads it back exactly", () => {
    for (const text of ["plain", "nul \u0000", "lone \ud800", "pair 😀"]) {
      const stored = encodeText(text)
      assert.strictEqual(stored.escaped, text === "nul \u0000" || text === "lone \ud800")
      assert.strictEqual(decodeText(stored.text, stored.escaped), text)
    }
  })

  describe("escapeUnsafeDeep", () => {
    it("returns a value with nothing to escape as it is, not a copy", () => {
      const raw = {
        _: "Message",
        id: 7,
        post: true,
        peerId: { _: "PeerChannel", channelId: "1000000001" },
        message: "BUY 😀",
        entities: [{ _: "MessageEntityBold", offset: 0, length: 3 }],
        replies: null,
        sparse: [1, , 3]
      }
      assert.strictEqual(escapeUnsafeDeep(raw), raw)
      assert.strictEqual(escapeUnsafeDeep(raw.entities), raw.entities)
      assert.strictEqual(escapeUnsafeDeep(null), null)
      assert.strictEqual(escapeUnsafeDeep(42), 42)
    })

    it("escapes strings and keys at any depth, without changing the input", () => {
      const raw = { ok: "fine", deep: [{ text: "a\u0000b", ["key\ud800"]: ["x", "\udc00"] }], kept: { n: 1 } }
      const escaped = escapeUnsafeDeep(raw)
      assert.strictEqual(
        JSON.stringify(escaped),
        JSON.stringify({ ok: "fine", deep: [{ text: "a\\u0000b", "key\\ud800": ["x", "\\udc00"] }], kept: { n: 1 } })
      )
      assert.strictEqual(raw.deep[0]!.text, "a\u0000b")
    })

    it("writes a bigint as its decimal string and an object with toJSON as its JSON form", () => {
      const value = { big: 9007199254740993n, at: new Date(Date.UTC(2026, 0, 2)) }
      assert.strictEqual(
        JSON.stringify(escapeUnsafeDeep(value)),
        "{\"big\":\"9007199254740993\",\"at\":\"2026-01-02T00:00:00.000Z\"}"
      )
    })

    it("keeps a key named __proto__ when it escapes", () => {
      const raw: unknown = JSON.parse("{\"__proto__\":\"a\\u0000\",\"b\":1}")
      assert.strictEqual(JSON.stringify(escapeUnsafeDeep(raw)), "{\"__proto__\":\"a\\\\u0000\",\"b\":1}")
    })

    it("gives the same JSON whether or not it copies", () => {
      const safe = { a: [1, "two", { three: [true, null] }], b: "😀" }
      const unsafe = { ...safe, c: "\u0000" }
      assert.strictEqual(JSON.stringify(escapeUnsafeDeep(safe)), JSON.stringify(safe))
      assert.strictEqual(
        JSON.stringify(escapeUnsafeDeep(unsafe)),
        JSON.stringify({ ...safe, c: "\\u0000" })
      )
    })
  })
})
