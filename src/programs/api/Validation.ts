/**
 * Request validation failures as `InvalidRequest`: the part of the request
 * (query, path, body) and the schema's own account of what was wrong.
 */
import { Effect } from "effect"
import { HttpApiMiddleware } from "effect/http-api"
import { InvalidRequest } from "./Errors.ts"
import { Validation } from "./Security.ts"

const partName = { Params: "path", Headers: "headers", Query: "query", Body: "body", Payload: "body", ResponseHeaders: "response headers" } as const

export const layer = HttpApiMiddleware.layerSchemaErrorTransform(Validation, (error) =>
  error.kind === "Body" || error.kind === "ResponseHeaders"
    ? Effect.fail(error)
    : Effect.fail(
      new InvalidRequest({
        code: "invalid_parameter",
        message: `Invalid ${partName[error.kind]}: ${error.cause.message}`
      })
    ))
