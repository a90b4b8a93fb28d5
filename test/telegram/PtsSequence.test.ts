import { assert, describe, it } from "@effect/vitest"
import { PtsSequence } from "../../src/layers/PtsSequence.ts"

const update = (pts: number, ptsCount = 1) => ({ pts, ptsCount, item: `u${pts}` })
const items = (list: ReadonlyArray<{ readonly item: string }>) => list.map((u) => u.item)

describe("PtsSequence (Telegram's pts rule)", () => {
  it("applies an update when local + pts_count == pts", () => {
    const sequence = new PtsSequence<string>(10, 100)
    assert.deepStrictEqual(items(sequence.offer(update(11)).apply), ["u11"])
    assert.deepStrictEqual(items(sequence.offer(update(14, 3)).apply), ["u14"])
    assert.strictEqual(sequence.pts, 14)
    assert.isFalse(sequence.gap)
  })

  it("ignores an update already applied (a duplicate or an old one)", () => {
    const sequence = new PtsSequence<string>(10, 100)
    sequence.offer(update(11))
    assert.deepStrictEqual(items(sequence.offer(update(11)).apply), [])
    assert.deepStrictEqual(items(sequence.offer(update(9)).apply), [])
    assert.strictEqual(sequence.pts, 11)
  })

  it("holds updates beyond a gap and applies them in order once it is filled, whatever order they came in", () => {
    const sequence = new PtsSequence<string>(10, 100)
    assert.deepStrictEqual(items(sequence.offer(update(13)).apply), [])
    assert.deepStrictEqual(items(sequence.offer(update(12)).apply), [])
    assert.isTrue(sequence.gap)
    assert.deepStrictEqual(items(sequence.offer(update(11)).apply), ["u11", "u12", "u13"])
    assert.isFalse(sequence.gap)
  })

  it("after a difference, drops what it covered and applies what follows", () => {
    const sequence = new PtsSequence<string>(10, 100)
    sequence.offer(update(12))
    sequence.offer(update(15))
    sequence.offer(update(16))
    assert.deepStrictEqual(items(sequence.advanceTo(14)), ["u15", "u16"])
    assert.strictEqual(sequence.pts, 16)
    assert.isFalse(sequence.gap)
  })

  it("reports an overflow instead of holding more than its capacity", () => {
    const sequence = new PtsSequence<string>(10, 2)
    sequence.offer(update(20))
    sequence.offer(update(21))
    assert.isTrue(sequence.offer(update(22)).overflow)
    assert.deepStrictEqual(items(sequence.advanceTo(19)), ["u20", "u21"])
  })
})
