/**
 * The consumer API server: the HttpApi routes with their guards, beside
 * health, metrics and the docs page, on Node's HTTP server.
 *
 * `Routes` needs the tiers (MessageQuery, MessageCache, EventBus) and the
 * configuration; `layer` listens on `api.host:api.port`. The tiers are made
 * real at the edge (src/main/Api.ts).
 */
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { Effect, Layer } from "effect"
import { HttpRouter } from "effect/http"
import { HttpApiBuilder } from "effect/http-api"
import { createServer } from "node:http"
import { ApiConfig } from "../../services/ApiConfig.ts"
import { GatewayApi } from "./Api.ts"
import { ApiKeys } from "./ApiKeys.ts"
import * as Authorization from "./Authorization.ts"
import * as ConsumerHandlers from "./ConsumerHandlers.ts"
import * as DocsPage from "./DocsPage.ts"
import * as Health from "./Health.ts"
import { CommitWatch } from "./CommitWatch.ts"
import { Limits } from "./Limits.ts"
import * as ReadHandlers from "./ReadHandlers.ts"
import * as RequestGuard from "./RequestGuard.ts"
import * as RequestMetrics from "./RequestMetrics.ts"
import * as Validation from "./Validation.ts"

const ApiRoutes = HttpApiBuilder.layer(GatewayApi, { openapiPath: "/openapi.json" }).pipe(
  Layer.provide([ReadHandlers.layer, ConsumerHandlers.layer]),
  Layer.provide([Authorization.layer, Validation.layer]),
  Layer.provide(ApiKeys.layer)
)

export const Routes = Layer.mergeAll(ApiRoutes, Health.layer, DocsPage.layer, RequestGuard.layer, RequestMetrics.layer).pipe(
  Layer.provide([Limits.layer, CommitWatch.layer])
)

/** Node's HTTP server, answering what its parser refuses in the API's JSON shape (RequestGuard.ts). */
export const makeNodeServer = Effect.map(Effect.context<never>(), (context) => () =>
  RequestGuard.answerClientErrors(createServer(), context))

export const layer = Layer.unwrap(Effect.gen(function*() {
  const config = yield* ApiConfig
  const nodeServer = yield* makeNodeServer
  return HttpRouter.serve(Routes, { disableLogger: true }).pipe(
    Layer.provide(NodeHttpServer.layer(nodeServer, { port: config.port, host: config.host }))
  )
}))
