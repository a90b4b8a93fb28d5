/**
 * The consumer API's own metrics (served on its /metrics). Prometheus names:
 * counters end in `_total`.
 */
import { Metric } from "effect"

/** Requests with no key or an unknown one; attribute `reason`: missing, unknown. */
export const authFailures = Metric.counter("api_auth_failures_total", {
  description: "API requests refused with 401: no X-API-Key, or one that is not configured",
  incremental: true
})

/**
 * Requests refused to bound their cost; attribute `reason`: rate_limited (a
 * key's bucket), key_busy (the key's concurrent searches or counts),
 * server_busy (every key's), timeout (statement timeout), health_rate_limited.
 */
export const requestsRefused = Metric.counter("api_requests_refused_total", {
  description: "API requests refused with 429 or 503 to bound their cost, by reason",
  incremental: true
})

/** Requests refused before routing; attribute `status`: 400, 404, 405, 413, 431. */
export const malformedRequests = Metric.counter("api_malformed_requests_total", {
  description: "HTTP requests refused before reaching an endpoint: no route, wrong method, too large, bad headers",
  incremental: true
})
