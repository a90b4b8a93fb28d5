/**
 * The metrics of the consumer API process (`telegram-gateway-api`), scraped
 * from its own `/metrics`; recorded for every request by
 * src/programs/api/RequestMetrics.ts. Names as in src/services/Metrics.ts:
 * counters end in `_total`, durations are in seconds.
 */
import { Metric } from "effect"

/** Attributes `method`, `route` (the route's pattern, e.g. `/api/v1/channels/:channelId/recent`), `status`. */
export const requests = Metric.counter("api_requests_total", {
  description: "HTTP requests answered, by method, route and status",
  incremental: true
})
/** Attributes `method`, `route`, `status`, as `api_requests_total`. */
export const requestDuration = Metric.histogram("api_request_duration_seconds", {
  description: "Time from request to response, by method, route and status (long polls included)",
  boundaries: Metric.exponentialBoundaries({ start: 0.001, factor: 2, count: 16 })
})
/** Attribute `reason`: `unauthenticated` (401, no or unknown key) or `forbidden` (403, key lacks the scope). */
export const authFailures = Metric.counter("api_auth_failures_total", {
  description: "Requests refused for a missing, unknown or insufficient API key",
  incremental: true
})
export const rateLimited = Metric.counter("api_rate_limited_total", {
  description: "Requests refused with 429 because their key's token bucket was empty",
  incremental: true
})
export const inFlight = Metric.gauge("api_requests_in_flight", {
  description: "Requests received and not yet answered"
})
export const longPollsWaiting = Metric.gauge("api_long_polls_waiting", {
  description: "Long polls (GET /api/v1/messages with wait > 0) waiting for an event"
})
/**
 * Attribute `reason`: `rate_limited` (a key's bucket), `public_rate_limited`
 * (an address's bucket for health, metrics and documents), `key_busy` (the
 * key's searches and counts), `server_busy` (every key's), `query_timeout`.
 */
export const requestsRefused = Metric.counter("api_requests_refused_total", {
  description: "API requests refused with 429 or 503 to bound their cost, by reason",
  incremental: true
})
/** Attribute `status`: 400, 404, 405, 413, 431. Includes what Node's parser refuses before routing. */
export const malformedRequests = Metric.counter("api_malformed_requests_total", {
  description: "HTTP requests refused before reaching an endpoint: no route, wrong method, too large, bad headers",
  incremental: true
})
