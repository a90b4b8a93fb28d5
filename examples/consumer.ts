/**
 * A reference downstream consumer: `API_KEY=... CONSUMER=billing npx tsx examples/consumer.ts`.
 *
 * It resumes from its checkpoint, long-polls for events, handles each one,
 * marks the page processed and then stores the page's cursor. A crash between
 * handling and checkpointing replays that page on restart, so handling must be
 * idempotent on the event `key`; the processed marks are how a consumer (or an
 * operator, GET /api/v1/consumers) can tell what was already done.
 *
 * Consuming RabbitMQ instead: bind a durable queue to the `telegram.messages`
 * topic exchange (`new.*`, `edited.*`, `deleted.*`, or `*.<channelId>`), ack
 * after handling and deduplicate on the AMQP `message_id` (the same event
 * key), see docs/rabbitmq.md. The bus pushes with lower latency but keeps
 * nothing for a consumer that was never bound; this API replays from any
 * cursor. A common setup is the queue for speed and this API to catch up.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Config, Effect, Redacted, Schedule } from "effect"
import { FetchHttpClient, HttpClient, HttpClientRequest } from "effect/http"
import { HttpApiClient } from "effect/http-api"
import { type Event, GatewayApi } from "../src/programs/api/Api.ts"

const handle = (event: Event) =>
  Effect.logInfo(`${event.kind} ${event.key}`).pipe(
    Effect.annotateLogs({ text: event.message?.text.slice(0, 80) ?? null })
  )

const program = Effect.gen(function*() {
  const baseUrl = yield* Config.String("API_URL").pipe(Config.withDefault("http://127.0.0.1:4010"))
  const apiKey = yield* Config.Redacted("API_KEY")
  const consumer = yield* Config.String("CONSUMER").pipe(Config.withDefault("example"))
  const api = yield* HttpApiClient.make(GatewayApi, {
    transformClient: (client) =>
      client.pipe(
        HttpClient.mapRequest((request) =>
          request.pipe(HttpClientRequest.prependUrl(baseUrl), HttpClientRequest.setHeader("x-api-key", Redacted.value(apiKey)))
        ),
        HttpClient.retryTransient({ schedule: Schedule.exponential("200 millis"), times: 5 })
      )
  })

  const checkpoint = yield* api.ack.checkpoint({ params: { consumer } })
  let cursor = checkpoint.cursor ?? undefined
  yield* Effect.logInfo(`Consumer ${consumer} resumes ${cursor === undefined ? "from the beginning" : `after ${cursor}`}`)

  while (true) {
    const page = yield* api.read.events({ query: { ...(cursor === undefined ? {} : { after: cursor }), limit: 500, wait: 25 } })
    if (page.events.length === 0) continue
    yield* Effect.forEach(page.events, handle, { discard: true })
    yield* api.ack.markProcessed({ params: { consumer }, payload: { keys: page.events.map((event) => event.key) } })
    yield* api.ack.setCheckpoint({ params: { consumer }, payload: { cursor: page.nextCursor } })
    cursor = page.nextCursor
  }
}).pipe(
  // A 429 says when to come back; anything else (API restart, 503) is retried
  // with a backoff capped at 30 s, resuming from the last stored checkpoint.
  Effect.tapError((error) =>
    error._tag === "RateLimited"
      ? Effect.sleep(`${error.retryAfterSeconds} seconds`)
      : Effect.logWarning(`Consumer loop failed, retrying: ${error.message}`)
  ),
  Effect.retry(Schedule.min([Schedule.exponential("1 second"), Schedule.spaced("30 seconds")])),
  Effect.provide(FetchHttpClient.layer)
)

NodeRuntime.runMain(program)
