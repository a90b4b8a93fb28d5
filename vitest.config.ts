import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Suites share one PostgreSQL, Redis and RabbitMQ; each isolates itself by
    // database name, key prefix and exchange name, but outage tests are timing
    // sensitive on two cores, so files run one at a time.
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 120_000
  }
})
