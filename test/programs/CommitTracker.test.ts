import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { makeCommitTracker, makeReleaser } from "../../src/programs/CommitTracker.ts"

describe("CommitTracker", () => {
  it("releases a batch only once it and every earlier batch are committed, in acceptance order", () => {
    const tracker = makeCommitTracker()
    const released: Array<string> = []
    const mark = (name: string) => Effect.sync(() => void released.push(name))
    const first = tracker.register(2, mark("first"), 1_000)
    const second = tracker.register(1, mark("second"), 2_000)
    const third = tracker.register(0, mark("third"), 3_000)

    // A later writer commits first: nothing is released past the first batch's gap.
    assert.deepStrictEqual(tracker.committed([second]), [])
    assert.strictEqual(tracker.oldestUncommittedAt(), 1_000)
    assert.deepStrictEqual(tracker.committed([first]), [])
    assert.strictEqual(tracker.uncommitted(), 1)

    const callbacks = tracker.committed([first])
    for (const callback of callbacks) Effect.runSync(callback)
    assert.deepStrictEqual(released, ["first", "second", "third"])
    assert.strictEqual(tracker.uncommitted(), 0)
    assert.strictEqual(tracker.oldestUncommittedAt(), undefined)
    assert.isAbove(third, second)
  })

  it("refuses a commit reported for more events than the batch has", () => {
    const tracker = makeCommitTracker()
    const only = tracker.register(1, Effect.void, 0)
    tracker.committed([only])
    assert.throws(() => tracker.committed([only]), /reported committed more often/)
  })

  it.effect("runs every released callback waiting in one turn, in release order, not one per scheduler turn", () =>
    Effect.gen(function*() {
      const release = yield* makeReleaser
      const ran: Array<number> = []
      const callbacks = Array.from({ length: 1_000 }, (_, index) => Effect.sync(() => void ran.push(index)))
      yield* release(callbacks.slice(0, 600))
      yield* release(callbacks.slice(600))
      // A loop that yields after each callback would have run about ten by now.
      for (let turn = 0; turn < 10; turn++) yield* Effect.yieldNow
      assert.deepStrictEqual(ran, Array.from({ length: 1_000 }, (_, index) => index))
    }))
})
