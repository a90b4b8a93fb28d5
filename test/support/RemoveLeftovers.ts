/**
 * Vitest setup file (vitest.config.ts `setupFiles`): after each test file,
 * removes what it left on the shared RabbitMQ and Redis under the names
 * `uniqueName` handed out (test/support/SharedNames.ts), even when its tests
 * failed. Every file's scopes have closed by then: the gateway processes they
 * started are gone (test/support/GatewayProcess.ts waits for their exit).
 */
import { afterAll } from "vitest"
import { removeLeftovers, takeHandedOut } from "./SharedNames.ts"

afterAll(async () => {
  await removeLeftovers(takeHandedOut())
}, 60_000)
