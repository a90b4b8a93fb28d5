/**
 * Checks every request before routing, and answers what no endpoint answers,
 * all in the API's JSON error shape:
 *
 * - a body larger than `api.maxBodyBytes` is refused with 413 without being
 *   read, and a chunked body that grows past it fails its read with 413;
 * - a body that is not JSON: 415;
 * - the endpoints without a key (health, metrics, documents) take a token
 *   from the caller's address bucket (Limits.ts): 429 past it;
 * - a path no route serves: 404; a path served for other methods: 405 with
 *   `Allow`.
 *
 * What Node's parser refuses before any of this (headers too large: 431, a
 * NUL or other invalid byte in a header: 400) is answered by
 * `answerClientErrors` on the Node server itself.
 */
import { ByteSize, Context, Effect, Layer, Metric, Option } from "effect"
import { HttpIncomingMessage, HttpRouter, HttpServerError, HttpServerRequest, HttpServerResponse } from "effect/http"
import { OpenApi } from "effect/http-api"
import type * as Http from "node:http"
import type { Duplex } from "node:stream"
import { ApiConfig } from "../../services/ApiConfig.ts"
import { GatewayApi } from "./Api.ts"
import { malformedRequests } from "../../services/ApiMetrics.ts"
import { Limits } from "./Limits.ts"
import { InvalidRequest, MethodNotAllowed, NotFound, PayloadTooLarge, UnsupportedMediaType } from "./Errors.ts"

type GuardError = InvalidRequest | NotFound | MethodNotAllowed | PayloadTooLarge | UnsupportedMediaType

const errorBody = (error: { _tag: string; status: number; code: string; message: string }) =>
  ({ _tag: error._tag, status: error.status, code: error.code, message: error.message })

const respond = (error: GuardError, headers: Record<string, string> = {}) =>
  Metric.update(malformedRequests.pipe(Metric.withAttributes({ status: String(error.status) })), 1).pipe(
    Effect.as(HttpServerResponse.jsonUnsafe(errorBody(error), { status: error.status, headers }))
  )

/** Every route as a method and a path pattern: the HttpApi endpoints, then Server.ts's own. */
const routes: ReadonlyArray<{ readonly method: string; readonly pattern: RegExp }> = [
  ...Object.entries(OpenApi.fromApi(GatewayApi).paths as Record<string, Record<string, unknown>>).flatMap(([path, methods]) =>
    Object.keys(methods).map((method) => ({
      method: method.toUpperCase(),
      pattern: new RegExp(`^${path.replace(/\{[^}]+\}/g, "[^/]+")}$`)
    }))
  ),
  ...["/health/live", "/health/ready", "/metrics", "/docs", "/openapi.json"].map((path) => ({
    method: "GET",
    pattern: new RegExp(`^${path.replace(".", "\\.")}$`)
  }))
]

/** 405 with the methods the path has, or 404 when it has none. */
const unrouted = (method: string, url: string) => {
  const path = url.split("?")[0] ?? url
  const allowed = [...new Set(routes.filter((route) => route.pattern.test(path)).map((route) => route.method))]
  if (allowed.length === 0) {
    return respond(new NotFound({ code: "not_found", message: `No endpoint at ${path}: /docs lists the API's endpoints` }))
  }
  return respond(
    new MethodNotAllowed({ message: `${path} does not take ${method}; it takes ${allowed.join(", ")}` }),
    { allow: allowed.join(", ") }
  )
}

export const layer = Layer.unwrap(Effect.gen(function*() {
  const config = yield* ApiConfig
  const limits = yield* Limits
  const maxBodySize = ByteSize.bytes(config.maxBodyBytes)
  const tooLarge = (size: string) =>
    new PayloadTooLarge({ message: `The request body is ${size}; the limit is ${config.maxBodyBytes} bytes (api.maxBodyBytes)` })
  /** The router's own failures (no route, a body it could not read) as the API's errors. */
  const routed = (request: HttpServerRequest.HttpServerRequest, httpEffect: Effect.Effect<HttpServerResponse.HttpServerResponse, unknown>) =>
    httpEffect.pipe(
      // The router fails with RouteNotFound; HttpApi dies with the body's RequestParseError.
      Effect.catchCause((cause) => {
        const error = cause.reasons
          .map((reason) => reason._tag === "Fail" ? reason.error : reason._tag === "Die" ? reason.defect : undefined)
          .find(HttpServerError.isHttpServerError)
        if (error === undefined) return Effect.failCause(cause)
        const reason = error.reason
        if (reason._tag === "RouteNotFound") return unrouted(request.method, request.url)
        if (reason._tag === "RequestParseError") {
          return respond(
            reason.reason === "BodyTooLarge"
              ? tooLarge("larger than allowed")
              : new InvalidRequest({
                code: "invalid_parameter",
                message: `The request body could not be read: ${reason.description ?? "malformed"}`
              })
          )
        }
        return Effect.failCause(cause)
      }),
      Effect.provideService(HttpIncomingMessage.MaxBodySize, maxBodySize)
    )
  /** The checks of the body's headers: a refusal, or undefined when the request may go on. */
  const bodyRefusal = (request: HttpServerRequest.HttpServerRequest): GuardError | undefined => {
    const length = request.headers["content-length"]
    const hasBody = (length !== undefined && length !== "0") || request.headers["transfer-encoding"] !== undefined
    if (length !== undefined && Number(length) > config.maxBodyBytes) return tooLarge(`${length} bytes`)
    const contentType = (request.headers["content-type"] ?? "").split(";")[0]?.trim().toLowerCase()
    if (hasBody && contentType !== "application/json") {
      return new UnsupportedMediaType({
        message: `Send the body as JSON with Content-Type: application/json; got "${contentType || "none"}"`
      })
    }
    return undefined
  }
  // A request under /api/ (every poll) is checked by plain calls: no effect
  // runs before the router's unless it is refused.
  return HttpRouter.middleware(
    (httpEffect) =>
      Effect.withFiber((fiber) => {
        const request = Context.getUnsafe(fiber.context, HttpServerRequest.HttpServerRequest)
        if (request.url.startsWith("/api/")) {
          const refusal = bodyRefusal(request)
          return refusal === undefined ? routed(request, httpEffect) : respond(refusal)
        }
        // Health, metrics and documents need no key: bounded per client address instead.
        const address = Option.getOrElse(request.remoteAddress, () => "unknown")
        return limits.rate("public", address, `Client ${address}`).pipe(
          Effect.matchEffect({
            onFailure: (error) =>
              Effect.succeed(HttpServerResponse.jsonUnsafe(errorBody(error), {
                status: error.status,
                headers: { "retry-after": String(error.retryAfterSeconds) }
              })),
            onSuccess: () => {
              const refusal = bodyRefusal(request)
              return refusal === undefined ? routed(request, httpEffect) : respond(refusal)
            }
          })
        )
      }),
    { global: true }
  )
}))

const statusText: Record<number, string> = { 400: "Bad Request", 431: "Request Header Fields Too Large" }

/**
 * Node's parser refuses some requests before the router sees them, and by
 * default answers with an empty body; this answers them as JSON instead.
 * `context` holds the metrics registry the count goes to.
 */
export const answerClientErrors = (server: Http.Server, context: Context.Context<never>): Http.Server =>
  server.on("clientError", (error: NodeJS.ErrnoException, socket: Duplex) => {
    if (error.code === "ECONNRESET" || !socket.writable) {
      socket.destroy()
      return
    }
    const tooLarge = error.code === "HPE_HEADER_OVERFLOW"
    const status = tooLarge ? 431 : 400
    const body = JSON.stringify(
      tooLarge
        ? { _tag: "HeadersTooLarge", status, code: "headers_too_large", message: "The request headers are too large" }
        : {
          _tag: "InvalidRequest",
          status,
          code: "invalid_parameter",
          message: "The request is not valid HTTP (a NUL or other invalid byte in a header?)"
        }
    )
    malformedRequests.pipe(Metric.withAttributes({ status: String(status) })).updateUnsafe(1, context)
    socket.end(
      `HTTP/1.1 ${status} ${statusText[status]}\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`
    )
  })
