/**
 * The API's middleware, as declared to the server, the OpenAPI document and
 * the typed client: one access guard per scope (the `X-API-Key` header), and
 * the translation of request validation failures into `InvalidRequest`.
 * Their server side is in Authorization.ts and Validation.ts.
 */
import { Context } from "effect"
import { HttpApiMiddleware, HttpApiSecurity, OpenApi } from "effect/http-api"
import type { ApiKeyEntry } from "../../services/ApiConfig.ts"
import { Forbidden, InvalidRequest, RateLimitedWithRetryAfter, Unauthorized } from "./Errors.ts"

export const ApiKeyHeader = HttpApiSecurity.apiKey({ key: "X-API-Key", in: "header" }).pipe(
  HttpApiSecurity.annotate(OpenApi.Description, "An API key; the server keeps only its SHA-256 (see docs/api.md)")
)

/** The configured key the request presented, provided by the access guards to the handlers. */
export class Caller extends Context.Service<Caller, ApiKeyEntry>()("telegram-gateway/api/Caller") {}

const guard = { security: { apiKey: ApiKeyHeader }, error: [Unauthorized, Forbidden, RateLimitedWithRetryAfter] } as const

/** Reading channels, events, messages, search and counts. */
export class ReadAccess extends HttpApiMiddleware.Service<ReadAccess, { provides: Caller }>()("telegram-gateway/api/ReadAccess", guard) {}

/** A consumer's checkpoint and processed marks: only the consumers the key is configured for. */
export class AckAccess extends HttpApiMiddleware.Service<AckAccess, { provides: Caller }>()("telegram-gateway/api/AckAccess", guard) {}

/** Every consumer's state. An admin key may also do what read and ack keys do. */
export class AdminAccess extends HttpApiMiddleware.Service<AdminAccess, { provides: Caller }>()("telegram-gateway/api/AdminAccess", guard) {}

/** Turns a request that fails its schema into a 400 naming the parameter. */
export class Validation extends HttpApiMiddleware.Service<Validation>()("telegram-gateway/api/Validation", {
  error: InvalidRequest
}) {}
