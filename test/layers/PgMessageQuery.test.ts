/**
 * `MessageQuery.eventKeys`, the bus relay's light read, against `events` on
 * the same rows: the same events in the same order, cut at the same point,
 * deletions included; and `eventsJson`, the API's poll, against the JSON the
 * API wrote from `events` (test/support/EventJson.ts).
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
import * as PgClient from "../../src/layers/PgClient.ts"
import * as PgMessageQuery from "../../src/layers/PgMessageQuery.ts"
import { MessageQuery } from "../../src/services/MessageQuery.ts"
import { configLayer, makeTestDatabase, query } from "../support/Database.ts"
import { assertJsonMatchesEvents, insertAwkwardEvents } from "../support/EventJson.ts"

describe("PgMessageQuery.eventKeys", () => {
  it.effect("lists the keys, sequences and receipt times of `events`, page by page, deletions included", () =>
    Effect.gen(function*() {
      const database = yield* makeTestDatabase("query_event_keys")
      yield* query(database, `
        INSERT INTO messages (channel_id, message_id, version, date, edit_date, text, raw, received_at)
        SELECT 1 + m % 2, m, v, now(), CASE WHEN v > 0 THEN now() END, 'message ' || m, '{}', now() - make_interval(secs => m)
        FROM generate_series(1, 30) m, generate_series(0, 1) v
        WHERE v = 0 OR m % 5 = 0`)
      yield* query(database, "INSERT INTO message_deletions (channel_id, message_id, deleted_at, received_at) VALUES (2, 3, now(), now())")
      const context = yield* Layer.build(
        PgMessageQuery.layer.pipe(Layer.provide(PgClient.layer), Layer.provide(configLayer(database)))
      )
      const messages = Context.get(context, MessageQuery)
      const pages = [{ after: 0n, limit: 1000 }, { after: 0n, limit: 7 }, { after: 20n, limit: 10 }, { after: 36n, limit: 10 }]
      for (const page of pages) {
        const events = yield* messages.events({ ...page, channelId: undefined })
        const keys = yield* messages.eventKeys(page)
        assert.deepStrictEqual(
          keys,
          events.map((event) => ({ seq: event.seq, key: event.key, receivedAt: event.receivedAt })),
          `after ${page.after}, limit ${page.limit}`
        )
      }
      const all = yield* messages.eventKeys({ after: 0n, limit: 1000 })
      assert.strictEqual(all.length, 37)
      assert.isTrue(all.some((event) => event.key === "2:3:deleted"))
    }).pipe(Effect.scoped))
})

describe("PgMessageQuery.eventsJson", () => {
  it.effect("writes each event of `events` as JSON.stringify does, escapes, nulls and deletions included", () =>
    Effect.gen(function*() {
      const database = yield* makeTestDatabase("query_events_json")
      yield* insertAwkwardEvents(database, 3)
      const context = yield* Layer.build(
        PgMessageQuery.layer.pipe(Layer.provide(PgClient.layer), Layer.provide(configLayer(database)))
      )
      const compared = yield* assertJsonMatchesEvents(Context.get(context, MessageQuery), 10)
      assert.isAbove(compared, 100)
    }).pipe(Effect.scoped))
})
