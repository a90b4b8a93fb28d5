/**
 * The deterministic tests: in-memory layers and the TestClock, no server,
 * no process, no network. `npm run test:fast` runs them in seconds; every
 * other test file needs the real services (README, "Tests").
 */
import { defineConfig } from "vitest/config"

export const fastTests = [
  "test/ArchitectureImports.test.ts",
  "test/domain/*.test.ts",
  "test/layers/ReconnectDelays.test.ts",
  "test/programs/BatchWriter.test.ts",
  "test/programs/BusRelay.test.ts",
  "test/programs/CommitTracker.test.ts",
  "test/programs/DatabaseWait.test.ts",
  "test/programs/HotPath.test.ts",
  "test/programs/Receive.test.ts",
  "test/programs/TierHealth.test.ts",
  "test/api/ApiConfig.test.ts",
  "test/api/CommitWatch.test.ts",
  "test/api/Cursor.test.ts",
  "test/api/LimitsBudget.test.ts",
  "test/telegram/GramJsMapping.test.ts",
  "test/telegram/PtsSequence.test.ts"
]

// Not merged with vitest.config.ts: a merge would add its include (every test) to this one.
export default defineConfig({
  test: {
    include: fastTests,
    // Nothing shared to protect: the files run side by side, in workers
    // reused across files (loading effect once per worker, not per file, is
    // most of the time).
    fileParallelism: true,
    isolate: false,
    testTimeout: 60_000
  }
})
