/**
 * The API's errors. Every one is JSON `{ _tag, status, code, message }`, the
 * message saying what to change; the status is also the HTTP status.
 */
import { Schema } from "effect"
import { HttpApiSchema } from "effect/http-api"

export class InvalidRequest extends Schema.TaggedError<InvalidRequest>()("InvalidRequest", {
  status: Schema.tag(400),
  code: Schema.Literals(["invalid_parameter", "malformed_cursor", "cursor_beyond_newest"]),
  message: Schema.String
}, { httpApiStatus: 400 }) {}

export class Unauthorized extends Schema.TaggedError<Unauthorized>()("Unauthorized", {
  status: Schema.tag(401),
  code: Schema.tag("unauthorized"),
  message: Schema.String
}, { httpApiStatus: 401 }) {}

export class Forbidden extends Schema.TaggedError<Forbidden>()("Forbidden", {
  status: Schema.tag(403),
  code: Schema.tag("forbidden"),
  message: Schema.String
}, { httpApiStatus: 403 }) {}

export class NotFound extends Schema.TaggedError<NotFound>()("NotFound", {
  status: Schema.tag(404),
  code: Schema.Literals(["unknown_channel", "message_not_found", "not_found"]),
  message: Schema.String
}, { httpApiStatus: 404 }) {}

export class MethodNotAllowed extends Schema.TaggedError<MethodNotAllowed>()("MethodNotAllowed", {
  status: Schema.tag(405),
  code: Schema.tag("method_not_allowed"),
  message: Schema.String
}, { httpApiStatus: 405 }) {}

export class Conflict extends Schema.TaggedError<Conflict>()("Conflict", {
  status: Schema.tag(409),
  code: Schema.tag("mark_limit_reached"),
  message: Schema.String
}, { httpApiStatus: 409 }) {}

export class PayloadTooLarge extends Schema.TaggedError<PayloadTooLarge>()("PayloadTooLarge", {
  status: Schema.tag(413),
  code: Schema.tag("body_too_large"),
  message: Schema.String
}, { httpApiStatus: 413 }) {}

export class UnsupportedMediaType extends Schema.TaggedError<UnsupportedMediaType>()("UnsupportedMediaType", {
  status: Schema.tag(415),
  code: Schema.tag("unsupported_media_type"),
  message: Schema.String
}, { httpApiStatus: 415 }) {}

export class RateLimited extends Schema.TaggedError<RateLimited>()("RateLimited", {
  status: Schema.tag(429),
  code: Schema.tag("rate_limited"),
  message: Schema.String,
  retryAfterSeconds: Schema.Int
}, { httpApiStatus: 429 }) {}

/** RateLimited with its `Retry-After` header, as the middleware declares it. */
export const RateLimitedWithRetryAfter = RateLimited.pipe(
  HttpApiSchema.encodeToWithHeaders({
    body: RateLimited,
    headers: { "retry-after": Schema.String }
  }, {
    decode: ({ body }) => body,
    encode: (error) => ({ body: error, headers: { "retry-after": String(error.retryAfterSeconds) } })
  })
)

/**
 * 503, with `Retry-After`: PostgreSQL unreachable (`unavailable`), every slot
 * for searches and counts busy (`server_busy`), or a query past its statement
 * timeout (`query_timeout`). One class: HttpApi takes one schema with
 * headers per status.
 */
export class Unavailable extends Schema.TaggedError<Unavailable>()("Unavailable", {
  status: Schema.tag(503),
  code: Schema.Literals(["unavailable", "server_busy", "query_timeout"]),
  message: Schema.String,
  retryAfterSeconds: Schema.Int
}, { httpApiStatus: 503 }) {}

/** Unavailable with its `Retry-After` header. */
export const UnavailableWithRetryAfter = Unavailable.pipe(
  HttpApiSchema.encodeToWithHeaders({
    body: Unavailable,
    headers: { "retry-after": Schema.String }
  }, {
    decode: ({ body }) => body,
    encode: (error) => ({ body: error, headers: { "retry-after": String(error.retryAfterSeconds) } })
  })
)
