/**
 * Records every request of the API in src/services/ApiMetrics.ts: count and
 * duration by method, route pattern and status, 401/403 as authentication
 * failures, 429 as rate-limited, and how many requests and long polls are in
 * flight. Routes are labelled by their pattern from the API definition (a
 * path that matches none is `unmatched`), so ids never become label values.
 */
import { Effect, Exit, Metric } from "effect"
import { HttpRouter, HttpServerError, HttpServerRequest } from "effect/http"
import { HttpApi } from "effect/http-api"
import * as ApiMetrics from "../../services/ApiMetrics.ts"
import { GatewayApi } from "./Api.ts"

interface Route {
  readonly method: string
  readonly pattern: string
  readonly matches: RegExp
}

const routeOf = (method: string, pattern: string): Route => ({
  method,
  pattern,
  matches: new RegExp(`^${pattern.split("/").map((part) => (part.startsWith(":") ? "[^/]+" : part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"))).join("/")}$`)
})

const routes: Array<Route> = [
  routeOf("GET", "/health/live"),
  routeOf("GET", "/health/ready"),
  routeOf("GET", "/metrics"),
  routeOf("GET", "/docs"),
  routeOf("GET", "/openapi.json")
]
HttpApi.reflect(GatewayApi, {
  onGroup: () => {},
  onEndpoint: ({ endpoint }) => void routes.push(routeOf(endpoint.method, endpoint.path))
})

/** The route pattern a request path belongs to, `unmatched` when none. */
export const routeLabel = (method: string, path: string): string =>
  routes.find((route) => route.method === method && route.matches.test(path))?.pattern ??
    routes.find((route) => route.matches.test(path))?.pattern ??
    "unmatched"

const longPollRoute = "/api/v1/messages"

export const layer = HttpRouter.middleware((httpEffect) =>
  Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const url = new URL(request.url, "http://api")
    const route = routeLabel(request.method, url.pathname)
    const longPoll = request.method === "GET" && route === longPollRoute && Number(url.searchParams.get("wait") ?? 0) > 0
    const started = performance.now()
    yield* Metric.modify(ApiMetrics.inFlight, 1)
    if (longPoll) yield* Metric.modify(ApiMetrics.longPollsWaiting, 1)
    return yield* httpEffect.pipe(
      Effect.onExit((exit) =>
        Effect.gen(function*() {
          // A failure is answered by the router from its cause (404 for no route, 500 for a defect).
          const status = Exit.isSuccess(exit) ? exit.value.status : (yield* HttpServerError.causeResponse(exit.cause))[0].status
          const attributes = { method: request.method, route, status: String(status) }
          yield* Metric.modify(ApiMetrics.inFlight, -1)
          if (longPoll) yield* Metric.modify(ApiMetrics.longPollsWaiting, -1)
          yield* Metric.update(ApiMetrics.requests.pipe(Metric.withAttributes(attributes)), 1)
          yield* Metric.update(
            ApiMetrics.requestDuration.pipe(Metric.withAttributes(attributes)),
            (performance.now() - started) / 1000
          )
          if (status === 401 || status === 403) {
            const reason = status === 401 ? "unauthenticated" : "forbidden"
            yield* Metric.update(ApiMetrics.authFailures.pipe(Metric.withAttributes({ reason })), 1)
          }
          if (status === 429) yield* Metric.update(ApiMetrics.rateLimited, 1)
        })
      )
    )
  }), { global: true })
