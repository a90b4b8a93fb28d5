/**
 * The headline promise under tier faults: the real gateway process ingests a
 * channel posting, editing and deleting at 200 events/s while one tier (or
 * all three) fails for real, on private instances (test/support/SideServices.ts):
 * processes killed and restarted, servers stopped, routes blackholed. After
 * healing, PostgreSQL holds exactly what Telegram produced (every version and
 * deletion, once per stable key), every committed event is on a bound queue at
 * least once, the tier's warning was logged once, and the metrics moved.
 */
import { assert, layer } from "@effect/vitest"
import { Duration, Effect, Fiber } from "effect"
import { downMessages, proxyTo, SideStack, startScenario } from "./FaultHarness.ts"

const rate = 200

/** Polls a sample of the gateway's /metrics until `accept` holds. */
const awaitMetric = (
  scenario: { readonly gateway: () => { readonly metric: (sample: string) => Effect.Effect<number | undefined> } },
  sample: string,
  accept: (value: number) => boolean,
  timeout: Duration.Input = "20 seconds"
) =>
  Effect.gen(function*() {
    while (true) {
      const value = yield* scenario.gateway().metric(sample)
      if (value !== undefined && accept(value)) return value
      yield* Effect.sleep("250 millis")
    }
  }).pipe(
    Effect.timeoutOrElse({
      duration: timeout,
      orElse: () => Effect.die(new Error(`${sample} never reached the expected value`))
    })
  )

layer(SideStack.layer, { timeout: "3 minutes", excludeTestServices: true })("durable path under tier faults", (it) => {
  it.effect("PgBouncer killed for 20 s, then restarted: nothing lost, the outage seen and logged once", () =>
    Effect.gen(function*() {
      const stack = yield* SideStack
      const scenario = yield* startScenario("fault_pgbouncer")
      const producer = yield* scenario.produce(rate)
      yield* Effect.sleep("5 seconds")

      yield* stack.pgbouncer.kill
      yield* awaitMetric(scenario, `tier_up{tier="postgres"}`, (value) => value === 0)
      const backlog = yield* awaitMetric(scenario, "ingest_oldest_uncommitted_seconds", (value) => value >= 5)
      assert.isAtLeast(backlog, 5)
      yield* Effect.sleep("12 seconds")
      yield* stack.pgbouncer.start
      yield* Effect.sleep("5 seconds")
      yield* Fiber.interrupt(producer)

      const result = yield* scenario.verify
      assert.isAbove(result.committed, 5_000)
      yield* awaitMetric(scenario, `tier_up{tier="postgres"}`, (value) => value === 1)
      assert.isAbove((yield* scenario.gateway().metric("database_write_failures_total")) ?? 0, 0)
      assert.strictEqual(yield* awaitMetric(scenario, "ingest_oldest_uncommitted_seconds", (value) => value < 1), 0)
      assert.strictEqual(scenario.logged(downMessages.postgres), 1)
    }), { timeout: 180_000 })
})
