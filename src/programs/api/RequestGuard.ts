/**
 * Checks every request before routing: a body larger than `api.maxBodyBytes`
 * is refused with 413 without being read (and a chunked body that grows past
 * it fails the read), a body that is not JSON with 415. Both answer in the
 * API's JSON error shape.
 */
import { ByteSize, Effect } from "effect"
import { HttpIncomingMessage, HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import { ApiConfig } from "../../services/ApiConfig.ts"
import { PayloadTooLarge, UnsupportedMediaType } from "./Errors.ts"

const respond = (error: PayloadTooLarge | UnsupportedMediaType) =>
  HttpServerResponse.jsonUnsafe(
    { _tag: error._tag, status: error.status, code: error.code, message: error.message },
    { status: error.status }
  )

export const layer = HttpRouter.middleware(
  Effect.gen(function*() {
    const config = yield* ApiConfig
    const maxBodySize = ByteSize.bytes(config.maxBodyBytes)
    return (httpEffect) =>
      Effect.gen(function*() {
        const request = yield* HttpServerRequest.HttpServerRequest
        const length = request.headers["content-length"]
        const hasBody = (length !== undefined && length !== "0") || request.headers["transfer-encoding"] !== undefined
        if (length !== undefined && Number(length) > config.maxBodyBytes) {
          return respond(
            new PayloadTooLarge({
              message: `The request body is ${length} bytes; the limit is ${config.maxBodyBytes} (api.maxBodyBytes)`
            })
          )
        }
        const contentType = (request.headers["content-type"] ?? "").split(";")[0]?.trim().toLowerCase()
        if (hasBody && contentType !== "application/json") {
          return respond(
            new UnsupportedMediaType({
              message: `Send the body as JSON with Content-Type: application/json; got "${contentType || "none"}"`
            })
          )
        }
        return yield* httpEffect
      }).pipe(Effect.provideService(HttpIncomingMessage.MaxBodySize, maxBodySize))
  }),
  { global: true }
)
