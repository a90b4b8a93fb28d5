import { defineConfig } from "vitest/config"

// The suite runs on Node 24 (.nvmrc; test/deploy/Runtime.test.ts fails on
// anything else). Vitest 5's reporter calls Map.groupBy, which Node 20 lacks:
// this keeps a single test file runnable from a shell still on Debian's Node
// 20, until deploy/scripts/node-runtime.sh is on every shell's PATH.
if (typeof (Map as { groupBy?: unknown }).groupBy !== "function") {
  Object.defineProperty(Map, "groupBy", {
    value: <K, V>(items: Iterable<V>, keyOf: (item: V, index: number) => K) => {
      const groups = new Map<K, Array<V>>()
      let index = 0
      for (const item of items) {
        const key = keyOf(item, index++)
        const group = groups.get(key)
        if (group === undefined) groups.set(key, [item])
        else group.push(item)
      }
      return groups
    }
  })
}

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Suites share one PostgreSQL, Redis and RabbitMQ; each isolates itself by
    // database name, key prefix and exchange name, but outage tests are timing
    // sensitive on two cores, so files run one at a time.
    fileParallelism: false,
    // What each file made on the shared RabbitMQ and Redis goes with it (CI runs on the same services).
    setupFiles: ["test/support/RemoveLeftovers.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000
  }
})
