/** The cursor's encoding: the same text as Buffer's base64url gave, and every issued cursor parses back. */
import { assert, describe, it } from "@effect/vitest"
import { Option } from "effect"
import { encodeCursor, parseCursor } from "../../src/programs/api/Cursor.ts"

const buffered = (seq: bigint) => Buffer.from(`v1:${seq}`, "utf8").toString("base64url")

describe("Cursor", () => {
  it("encodes as Buffer's base64url of v1:<seq> did, for every length of the sequence value", () => {
    const values = [0n, 1n, 9n, 10n, 99n, 100n, 12_345n, 1_000_000n, 2n ** 31n, 2n ** 53n + 1n, 2n ** 63n - 1n]
    for (let digits = 1; digits <= 19; digits++) values.push(10n ** BigInt(digits - 1), 10n ** BigInt(digits) - 1n)
    for (const seq of values) {
      assert.strictEqual(encodeCursor(seq), buffered(seq), String(seq))
      // The sequence is a bigint column: past its largest value no cursor is issued, and none parses.
      assert.deepStrictEqual(parseCursor(encodeCursor(seq)), seq <= 2n ** 63n - 1n ? Option.some(seq) : Option.none())
    }
  })
})
