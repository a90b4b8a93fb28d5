/**
 * Records every request of the API in src/services/ApiMetrics.ts: count and
 * duration by method, route pattern and status, 401/403 as authentication
 * failures, 429 as rate-limited, and how many requests and long polls are in
 * flight. Routes are labelled by their pattern from the API definition (a
 * path that matches none is `unmatched`), so ids never become label values.
 */
import { Context, Effect, Exit, Metric } from "effect"
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

/** Routes without path parameters by method and path: the polls' route is found without a regular expression. */
const exact = new Map(routes.filter((route) => !route.pattern.includes(":")).map((route) => [`${route.method} ${route.pattern}`, route.pattern]))

/** The route pattern a request path belongs to, `unmatched` when none. */
export const routeLabel = (method: string, path: string): string =>
  exact.get(`${method} ${path}`) ??
    routes.find((route) => route.method === method && route.matches.test(path))?.pattern ??
    routes.find((route) => route.matches.test(path))?.pattern ??
    "unmatched"

const longPollRoute = "/api/v1/messages"

/**
 * The request counter and duration histogram with one answer's attributes,
 * made once per method, route and status (a bounded set: route patterns,
 * not paths) rather than on every request.
 */
const answered = new Map<string, { readonly requests: typeof ApiMetrics.requests; readonly duration: typeof ApiMetrics.requestDuration }>()
const answeredMetrics = (method: string, route: string, status: number) => {
  const key = `${method} ${route} ${status}`
  let metrics = answered.get(key)
  if (metrics === undefined) {
    const attributes = { method, route, status: String(status) }
    metrics = {
      requests: ApiMetrics.requests.pipe(Metric.withAttributes(attributes)),
      duration: ApiMetrics.requestDuration.pipe(Metric.withAttributes(attributes))
    }
    answered.set(key, metrics)
  }
  return metrics
}

/**
 * Counted by plain calls on the request fiber's context (`updateUnsafe`), not
 * by an effect per metric: this runs on every poll, and each effect is work
 * for the fiber's run loop.
 */
export const layer = HttpRouter.middleware((httpEffect) =>
  Effect.withFiber((fiber) => {
    const context = fiber.context
    const request = Context.getUnsafe(context, HttpServerRequest.HttpServerRequest)
    const query = request.url.indexOf("?")
    const path = query === -1 ? request.url : request.url.slice(0, query)
    const route = routeLabel(request.method, path)
    // Most polls carry no `wait`: the query string is parsed only when it names one.
    const longPoll = request.method === "GET" && route === longPollRoute && query !== -1 &&
      request.url.includes("wait=", query) &&
      Number(new URLSearchParams(request.url.slice(query + 1)).get("wait") ?? 0) > 0
    const started = performance.now()
    ApiMetrics.inFlight.modifyUnsafe(1, context)
    if (longPoll) ApiMetrics.longPollsWaiting.modifyUnsafe(1, context)
    const answered = (status: number) => {
      const metrics = answeredMetrics(request.method, route, status)
      ApiMetrics.inFlight.modifyUnsafe(-1, context)
      if (longPoll) ApiMetrics.longPollsWaiting.modifyUnsafe(-1, context)
      metrics.requests.updateUnsafe(1, context)
      metrics.duration.updateUnsafe((performance.now() - started) / 1000, context)
      if (status === 401 || status === 403) {
        const reason = status === 401 ? "unauthenticated" : "forbidden"
        ApiMetrics.authFailures.pipe(Metric.withAttributes({ reason })).updateUnsafe(1, context)
      }
      if (status === 429) ApiMetrics.rateLimited.updateUnsafe(1, context)
    }
    return Effect.onExit(httpEffect, (exit) => {
      if (Exit.isSuccess(exit)) {
        answered(exit.value.status)
        return Effect.void
      }
      // A failure is answered by the router from its cause (404 for no route, 500 for a defect).
      return Effect.map(HttpServerError.causeResponse(exit.cause), ([response]) => answered(response.status))
    })
  }), { global: true })
