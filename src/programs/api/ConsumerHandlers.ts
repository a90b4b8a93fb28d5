/** Handlers of the ack group (a consumer's marks and checkpoint) and the admin group. */
import { Effect, Layer, Option } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import { type Checkpoint, MessageQuery } from "../../services/MessageQuery.ts"
import { CheckpointView, ConsumerView, GatewayApi, MarkResult } from "./Api.ts"
import { decodeCursor, encodeCursor } from "./Cursor.ts"
import { orUnavailable } from "./Requests.ts"

const toView = (consumer: string, checkpoint: Option.Option<Checkpoint>) =>
  Option.match(checkpoint, {
    onNone: () => new CheckpointView({ consumer, cursor: null, updatedAt: null }),
    onSome: (stored) => new CheckpointView({ consumer, cursor: encodeCursor(stored.seq), updatedAt: stored.updatedAt })
  })

const AckHandlers = HttpApiBuilder.group(
  GatewayApi,
  "ack",
  Effect.fn(function*(handlers) {
    const query = yield* MessageQuery
    return handlers
      .handle("markProcessed", ({ params, payload }) =>
        orUnavailable(query.markProcessed(params.consumer, payload.keys).pipe(Effect.map((summary) => new MarkResult(summary)))))
      .handle("checkpoint", ({ params }) =>
        orUnavailable(query.checkpoint(params.consumer).pipe(Effect.map((stored) => toView(params.consumer, stored)))))
      .handle("setCheckpoint", ({ params, payload }) =>
        orUnavailable(Effect.gen(function*() {
          const seq = yield* decodeCursor(payload.cursor, "cursor")
          const stored = yield* query.setCheckpoint(params.consumer, seq)
          return toView(params.consumer, Option.some(stored))
        })))
  })
)

const AdminHandlers = HttpApiBuilder.group(
  GatewayApi,
  "admin",
  Effect.fn(function*(handlers) {
    const query = yield* MessageQuery
    return handlers.handle("consumers", () =>
      orUnavailable(query.consumers.pipe(Effect.map((consumers) => ({
        consumers: consumers.map((summary) =>
          new ConsumerView({
            consumer: summary.consumer,
            cursor: summary.checkpoint === null ? null : encodeCursor(summary.checkpoint.seq),
            updatedAt: summary.checkpoint?.updatedAt ?? null,
            processed: summary.processed
          })
        )
      })))))
  })
)

export const layer = Layer.mergeAll(AckHandlers, AdminHandlers)
