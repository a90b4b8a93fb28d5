/** Handlers of the ack group (a consumer's marks and checkpoint) and the admin group. */
import { Effect, Layer, Option } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import { ApiConfig, consumersOf } from "../../services/ApiConfig.ts"
import { type Checkpoint, MessageQuery } from "../../services/MessageQuery.ts"
import { allows } from "./ApiKeys.ts"
import { CheckpointView, ConsumerView, GatewayApi, MarkResult } from "./Api.ts"
import { encodeCursor, requireCursor } from "./Cursor.ts"
import { Conflict, Forbidden } from "./Errors.ts"
import { beyondNewest, orUnavailable } from "./Requests.ts"
import { Caller } from "./Security.ts"

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
    const config = yield* ApiConfig
    /** A key acts for the consumers it is configured for (its own name by default); admin for any. */
    const requireOwner = (consumer: string) =>
      Effect.gen(function*() {
        const caller = yield* Caller
        if (allows(caller, "admin") || consumersOf(caller).includes(consumer)) return
        return yield* new Forbidden({
          message: `API key "${caller.name}" may not read or change consumer "${consumer}"; ` +
            `it is configured for: ${consumersOf(caller).join(", ") || "none"} (api.keys consumers)`
        })
      })
    return handlers
      .handle("markProcessed", ({ params, payload }) =>
        orUnavailable(Effect.gen(function*() {
          yield* requireOwner(params.consumer)
          const summary = yield* query.markProcessed(params.consumer, payload.keys, config.maxMarksPerConsumer).pipe(
            Effect.catchTag("MarkLimitReached", (error) =>
              Effect.logWarning("Mark limit reached").pipe(
                Effect.annotateLogs({ consumer: error.consumer, marks: error.marks, limit: error.limit }),
                Effect.andThen(Effect.fail(new Conflict({ message: error.message })))
              ))
          )
          return new MarkResult(summary)
        })))
      .handle("checkpoint", ({ params }) =>
        orUnavailable(Effect.gen(function*() {
          yield* requireOwner(params.consumer)
          return toView(params.consumer, yield* query.checkpoint(params.consumer))
        })))
      .handle("setCheckpoint", ({ params, payload }) =>
        orUnavailable(Effect.gen(function*() {
          yield* requireOwner(params.consumer)
          const seq = yield* requireCursor(payload.cursor, "cursor")
          const stored = yield* query.setCheckpoint(params.consumer, seq).pipe(
            Effect.catchTag("CursorBeyondNewest", (error) => Effect.fail(beyondNewest(error)))
          )
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
