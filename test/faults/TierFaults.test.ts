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
import { query, type TestDatabase } from "../support/Database.ts"
import { downMessages, proxyTo, SideStack, startScenario } from "./FaultHarness.ts"

const rate = 200

/**
 * Starts a fault and returns its healing, which also runs when the test ends
 * early: a failed test never leaves a side service down for the next one.
 */
const fault = (start: Effect.Effect<void>, heal: Effect.Effect<void>) =>
  Effect.gen(function*() {
    let healed = false
    const healOnce = Effect.suspend(() => {
      if (healed) return Effect.void
      healed = true
      return heal
    })
    yield* Effect.acquireRelease(start, () => healOnce)
    return healOnce
  })

/** Polls a sample of the gateway's /metrics until `accept` holds. */
const awaitMetric = (
  scenario: {
    readonly gateway: () => {
      readonly metric: (sample: string) => Effect.Effect<number | undefined>
      readonly output: () => string
    }
  },
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
      orElse: () =>
        Effect.die(
          new Error(`${sample} never reached the expected value; gateway output:\n${scenario.gateway().output().slice(-6000)}`)
        )
    })
  )

layer(SideStack.layer, { timeout: "5 minutes", excludeTestServices: true })("durable path under tier faults", (it) => {
  it.effect("PgBouncer killed for 20 s, then restarted: nothing lost, the outage seen and logged once", () =>
    Effect.gen(function*() {
      const stack = yield* SideStack
      const scenario = yield* startScenario("fault_pgbouncer")
      const producer = yield* scenario.produce(rate)
      yield* Effect.sleep("5 seconds")

      const heal = yield* fault(stack.pgbouncer.kill, stack.pgbouncer.start)
      yield* awaitMetric(scenario, `tier_up{tier="postgres"}`, (value) => value === 0)
      const backlog = yield* awaitMetric(scenario, "ingest_oldest_uncommitted_seconds", (value) => value >= 5)
      assert.isAtLeast(backlog, 5)
      yield* Effect.sleep("12 seconds")
      yield* heal
      yield* Effect.sleep("5 seconds")
      yield* Fiber.interrupt(producer)

      const result = yield* scenario.verify
      yield* report("PgBouncer SIGKILL", result)
      assert.isAbove(result.committed, 5_000)
      yield* awaitMetric(scenario, `tier_up{tier="postgres"}`, (value) => value === 1)
      assert.isAbove((yield* scenario.gateway().metric("database_write_failures_total")) ?? 0, 0)
      assert.strictEqual(yield* awaitMetric(scenario, "ingest_oldest_uncommitted_seconds", (value) => value < 1), 0)
      assert.strictEqual(scenario.logged(downMessages.postgres), 1)
    }), { timeout: 300_000 })

  it.effect("PostgreSQL stopped (fast shutdown) for 20 s, then started: nothing lost", () =>
    Effect.gen(function*() {
      const stack = yield* SideStack
      const scenario = yield* startScenario("fault_postgres_restart")
      const producer = yield* scenario.produce(rate)
      yield* Effect.sleep("5 seconds")
      const heal = yield* fault(stack.postgres.stop, stack.postgres.start)
      yield* awaitMetric(scenario, `tier_up{tier="postgres"}`, (value) => value === 0)
      yield* Effect.sleep("18 seconds")
      yield* heal
      yield* Effect.sleep("5 seconds")
      yield* Fiber.interrupt(producer)

      const result = yield* scenario.verify
      yield* report("PostgreSQL fast restart", result)
      assert.isAbove(result.committed, 5_000)
      yield* awaitMetric(scenario, `tier_up{tier="postgres"}`, (value) => value === 1)
      assert.strictEqual(scenario.logged(downMessages.postgres), 1)
    }), { timeout: 300_000 })

  it.effect("RabbitMQ stopped (stop_app) for 20 s: the relay publishes every committed event afterwards", () =>
    Effect.gen(function*() {
      const stack = yield* SideStack
      const scenario = yield* startScenario("fault_rabbitmq_stop")
      const producer = yield* scenario.produce(rate)
      yield* Effect.sleep("5 seconds")
      const heal = yield* fault(stack.rabbitmq.stopApp, stack.rabbitmq.startApp)
      yield* awaitMetric(scenario, `tier_up{tier="rabbitmq"}`, (value) => value === 0)
      yield* awaitMetric(scenario, "bus_unpublished_events", (value) => value > 100)
      yield* Effect.sleep("15 seconds")
      yield* heal
      yield* Effect.sleep("5 seconds")
      yield* Fiber.interrupt(producer)

      const result = yield* scenario.verify
      yield* report("RabbitMQ stop_app", result)
      yield* awaitMetric(scenario, "bus_unpublished_events", (value) => value === 0, "30 seconds")
      yield* awaitMetric(scenario, `tier_up{tier="rabbitmq"}`, (value) => value === 1)
      assert.isAbove((yield* scenario.gateway().metric("bus_relay_published_total")) ?? 0, 1_000)
      assert.isAbove((yield* scenario.gateway().metric("rabbitmq_failures_total")) ?? 0, 0)
      assert.strictEqual(scenario.logged(downMessages.rabbitmq), 1)
      // Only publishes in flight when the broker went away may arrive twice.
      assert.isAtMost(result.duplicates, 1_000)
    }), { timeout: 300_000 })

  it.effect("RabbitMQ unreachable (packets dropped) for 20 s: noticed within seconds, duplicates bounded", () =>
    Effect.gen(function*() {
      const stack = yield* SideStack
      const proxy = yield* proxyTo(stack.rabbitmq.port)
      const scenario = yield* startScenario("fault_rabbitmq_blackhole", { rabbitmqProxy: proxy })
      const producer = yield* scenario.produce(rate)
      yield* Effect.sleep("5 seconds")
      const heal = yield* fault(proxy.blackhole, proxy.heal)
      const started = Date.now()
      yield* awaitMetric(scenario, `tier_up{tier="rabbitmq"}`, (value) => value === 0, "15 seconds")
      const noticedAfter = Date.now() - started
      yield* Effect.sleep(Duration.millis(Math.max(0, 20_000 - noticedAfter)))
      yield* heal
      yield* Effect.sleep("5 seconds")
      yield* Fiber.interrupt(producer)

      const result = yield* scenario.verify
      yield* report(`RabbitMQ blackholed (noticed after ${noticedAfter} ms)`, result)
      assert.isAtMost(noticedAfter, 10_000)
      yield* awaitMetric(scenario, "bus_unpublished_events", (value) => value === 0, "30 seconds")
      assert.strictEqual(scenario.logged(downMessages.rabbitmq), 1)
      assert.isAtMost(result.duplicates, 1_000)
    }), { timeout: 300_000 })

  it.effect("the gateway SIGKILLed while PostgreSQL is down, restarted after: every accepted event recovered", () =>
    Effect.gen(function*() {
      const stack = yield* SideStack
      const scenario = yield* startScenario("fault_kill_during_outage")
      const producer = yield* scenario.produce(rate)
      yield* Effect.sleep("5 seconds")
      const heal = yield* fault(stack.postgres.stop, stack.postgres.start)
      yield* awaitMetric(scenario, "ingest_queue_depth", (value) => value > 500)
      scenario.gateway().kill("SIGKILL")
      yield* scenario.gateway().exited
      yield* Effect.sleep("5 seconds")
      yield* heal
      yield* scenario.restartGateway
      yield* Effect.sleep("10 seconds")
      yield* Fiber.interrupt(producer)

      const result = yield* scenario.verify
      yield* report("gateway SIGKILL while PostgreSQL down", result)
      assert.isAbove(result.committed, 3_000)
    }), { timeout: 300_000 })

  it.effect("the gateway SIGKILLed while RabbitMQ is down, restarted after: its relay publishes every committed event the dead one had not", () =>
    Effect.gen(function*() {
      const stack = yield* SideStack
      const scenario = yield* startScenario("fault_kill_during_bus_outage")
      const producer = yield* scenario.produce(rate)
      yield* Effect.sleep("5 seconds")
      const heal = yield* fault(stack.rabbitmq.stopApp, stack.rabbitmq.startApp)
      // Committed, never confirmed: only the relay's mark in PostgreSQL remembers them.
      const unpublished = yield* awaitMetric(scenario, "bus_unpublished_events", (value) => value > 500, "30 seconds")
      scenario.gateway().kill("SIGKILL")
      yield* scenario.gateway().exited
      yield* heal
      yield* scenario.restartGateway
      yield* Effect.sleep("10 seconds")
      yield* Fiber.interrupt(producer)

      const result = yield* scenario.verify
      yield* report("gateway SIGKILL while RabbitMQ down", result)
      yield* awaitMetric(scenario, "bus_unpublished_events", (value) => value === 0, "30 seconds")
      // The restarted process's own relay published what the dead one left.
      assert.isAtLeast((yield* scenario.gateway().metric("bus_relay_published_total")) ?? 0, unpublished)
      assert.isAtMost(result.duplicates, 1_000)
    }), { timeout: 300_000 })

  it.effect("started while PostgreSQL is down: waits, says so in the log and /health/ready, counts it, backs off, then ingests everything", () =>
    Effect.gen(function*() {
      const stack = yield* SideStack
      const scenario = yield* startScenario("fault_start_without_database")
      const producer = yield* scenario.produce(rate)
      yield* Effect.sleep("3 seconds")
      // Stopped cleanly (its read position saved), then started again while the database is down, as after a host's reboot.
      scenario.gateway().kill("SIGTERM")
      yield* scenario.gateway().exited
      const heal = yield* fault(stack.postgres.stop, stack.postgres.start)
      const gateway = yield* scenario.restartGateway
      yield* gateway.waitForLog(/account default: waiting for PostgreSQL/, "60 seconds")
      const waiting = yield* gateway.get("/health/ready").pipe(
        Effect.map((response) => ({
          status: response?.status,
          account: (JSON.parse(response?.body ?? "{}") as { accounts?: ReadonlyArray<{ role: string; detail?: string }> })
            .accounts?.[0]
        }))
      )
      assert.strictEqual(waiting.status, 503)
      assert.strictEqual(waiting.account?.role, "standby")
      assert.include(waiting.account?.detail ?? "", "waiting for PostgreSQL since")
      // Nothing is written yet, but the alert on tier_up must fire.
      yield* awaitMetric(scenario, `tier_up{tier="postgres"}`, (value) => value === 0)
      yield* Effect.sleep("20 seconds")
      // Backing off from ha.pollInterval (1 s) to 10 s: a handful of attempts in 20 s, not one a second.
      const failures = (yield* gateway.metric(`lease_poll_failures_total{account="default"}`)) ?? 0
      assert.isAtLeast(failures, 2)
      assert.isAtMost(failures, 10)
      yield* heal
      yield* gateway.waitForLog(/account default: PostgreSQL answers again/, "30 seconds")
      yield* gateway.waitForLog(/owner of account default/, "30 seconds")
      yield* awaitMetric(scenario, `tier_up{tier="postgres"}`, (value) => value === 1)
      yield* Effect.sleep("5 seconds")
      yield* Fiber.interrupt(producer)

      const result = yield* scenario.verify
      yield* report("gateway started while PostgreSQL is down", result)
      assert.isAbove(result.committed, 3_000)
      assert.strictEqual(scenario.logged("account default: waiting for PostgreSQL"), 1, "warned once, not per attempt")
      assert.strictEqual(scenario.logged("reading the lease failed, will retry"), 0)
    }), { timeout: 300_000 })

  it.effect("Redis killed for 20 s, then restarted empty: the cache is refilled from PostgreSQL", () =>
    Effect.gen(function*() {
      const stack = yield* SideStack
      const scenario = yield* startScenario("fault_redis_kill")
      const producer = yield* scenario.produce(rate)
      yield* Effect.sleep("5 seconds")
      const heal = yield* fault(stack.redis.kill, stack.redis.start)
      yield* awaitMetric(scenario, `tier_up{tier="redis"}`, (value) => value === 0)
      yield* Effect.sleep("18 seconds")
      yield* heal
      yield* Effect.sleep("5 seconds")
      yield* Fiber.interrupt(producer)

      const result = yield* scenario.verify
      yield* report("Redis SIGKILL", result)
      yield* awaitMetric(scenario, `tier_up{tier="redis"}`, (value) => value === 1)
      assert.isAbove((yield* scenario.gateway().metric("redis_failures_total")) ?? 0, 0)
      assert.strictEqual(scenario.logged(downMessages.redis), 1)
      // The recent window (redis.recentLimit, 1,000 by default) answers as the database does.
      const recent = yield* recentKeys(scenario, 1_000)
      const uncached = yield* Effect.gen(function*() {
        while (true) {
          const missing = yield* scenario.uncached(recent)
          if (missing.length === 0) return missing
          yield* Effect.sleep("500 millis")
        }
      }).pipe(Effect.timeoutOrElse({ duration: "15 seconds", orElse: () => scenario.uncached(recent) }))
      assert.deepStrictEqual(uncached, [])
    }), { timeout: 300_000 })

  it.effect("all three tiers down at once for 20 s: nothing lost in PostgreSQL or on the bus", () =>
    Effect.gen(function*() {
      const stack = yield* SideStack
      const scenario = yield* startScenario("fault_all_tiers")
      const producer = yield* scenario.produce(rate)
      yield* Effect.sleep("5 seconds")
      const heal = yield* fault(
        Effect.all([stack.pgbouncer.kill, stack.redis.kill, stack.rabbitmq.stopApp], { concurrency: "unbounded" }),
        Effect.all([stack.pgbouncer.start, stack.redis.start, stack.rabbitmq.startApp], { concurrency: "unbounded" })
      )
      yield* Effect.sleep("20 seconds")
      yield* heal
      yield* Effect.sleep("5 seconds")
      yield* Fiber.interrupt(producer)

      const result = yield* scenario.verify
      yield* report("all three tiers down", result)
      for (const tier of ["postgres", "redis", "rabbitmq"] as const) {
        yield* awaitMetric(scenario, `tier_up{tier="${tier}"}`, (value) => value === 1, "30 seconds")
        assert.strictEqual(scenario.logged(downMessages[tier]), 1, `${tier} warned once`)
      }
    }), { timeout: 300_000 })

  it.effect("PostgreSQL stopped for 60 s: the backlog is held, reported, and committed after", () =>
    Effect.gen(function*() {
      const stack = yield* SideStack
      const scenario = yield* startScenario("fault_postgres_60s")
      const producer = yield* scenario.produce(rate)
      yield* Effect.sleep("5 seconds")
      const heal = yield* fault(stack.postgres.stop, stack.postgres.start)
      yield* awaitMetric(scenario, "ingest_oldest_uncommitted_seconds", (value) => value >= 30, "45 seconds")
      const ready = yield* scenario.gateway().get("/health/ready")
      assert.strictEqual(ready?.status, 503)
      yield* Effect.sleep("25 seconds")
      yield* heal
      yield* Effect.sleep("5 seconds")
      yield* Fiber.interrupt(producer)

      const result = yield* scenario.verify
      yield* report("PostgreSQL stopped 60 s", result)
      yield* awaitMetric(scenario, "ingest_oldest_uncommitted_seconds", (value) => value < 1)
      assert.strictEqual(scenario.logged(downMessages.postgres), 1)
    }), { timeout: 360_000 })
})

/** What each fault cost, for docs/benchmarks.md and the closing note. */
const report = (fault: string, result: { readonly committed: number; readonly delivered: number; readonly duplicates: number }) =>
  Effect.logInfo(
    `FAULT ${fault}: ${result.committed} events committed, ${result.delivered} deliveries on the bus, ${result.duplicates} duplicates`
  )

/** The newest `limit` stable keys of the scenario's channel, as the cache's recent window holds them. */
const recentKeys = (scenario: { readonly database: TestDatabase; readonly channelId: number }, limit: number) =>
  query<{ key: string }>(
    scenario.database,
    `SELECT key FROM (
       SELECT channel_id || ':' || message_id || ':' || version AS key, event_seq FROM messages
       UNION ALL SELECT channel_id || ':' || message_id || ':deleted', event_seq FROM message_deletions) k
     ORDER BY event_seq DESC LIMIT ${limit}`
  ).pipe(Effect.map((rows) => rows.map((row) => row.key)), Effect.orDie)
