/**
 * The poll's two reads held to each other: `MessageQuery.eventsJson` (each
 * event's JSON written by PostgreSQL, sql/0055) against `events` (rows to
 * objects, then JSON.stringify, as the API wrote its pages before), on rows
 * that exercise every escape and null the JSON can hold.
 */
import { assert } from "@effect/vitest"
import { Effect, Schedule } from "effect"
import { ChannelId } from "../../src/domain/Message.ts"
import type { MessageQuery, StoredEvent } from "../../src/services/MessageQuery.ts"
import { query, type TestDatabase } from "./Database.ts"

/** The two channels `insertAwkwardEvents` writes to. */
export const awkwardChannels = [ChannelId.make(5), ChannelId.make(6)] as const

/**
 * Ten events on channels 5 and 6, their dates `daysBack` days back (so that
 * TimescaleDB can compress them): quotes, backslashes, control characters,
 * Cyrillic and an emoji in text and names; a text the store escaped (a NUL and
 * a lone surrogate); null and absent senders, jsonb `null` values, nested
 * media and raw; sub-millisecond times; an edit, a deleted message and two
 * deletions.
 */
export const insertAwkwardEvents = (database: TestDatabase, daysBack: number) =>
  Effect.gen(function*() {
    yield* query(database, `
    WITH t AS (SELECT date_trunc('day', now()) - make_interval(days => ${daysBack}) + interval '10 hours' AS day)
    INSERT INTO messages (channel_id, message_id, version, date, edit_date, sender_id, sender_kind, sender_name,
                          text, text_escaped, entities, media, reply_to_message_id, grouped_id, views, forwards,
                          raw, received_at, deleted_at)
    SELECT v.* FROM t, LATERAL (VALUES
      (5::bigint, 1, 0, t.day + interval '0.999999 second', NULL::timestamptz, 42::bigint, 'channel',
       'Sig "nals" \\ back', E'line 1\\nline 2\\t"quoted" \\\\ back \\x01\\x1f Привет 🚀', false,
       '[{"type": "bold", "offset": 0, "length": 5}]'::jsonb,
       '{"photo": {"id": "5", "sizes": [1, 2.5, -3, 1e-7, 12345678901234567890]}, "caption": "é \\u2028 \\"q\\""}'::jsonb,
       7, '1234567890123', 100, 3,
       '{"_": "message", "id": 1, "10": "ten", "2": "two", "nested": {"a": [true, false, null]}}'::jsonb,
       t.day + interval '1.123999 second', NULL::timestamptz),
      (5, 1, 1767607300, t.day + interval '0.999999 second', to_timestamp(1767607300.75), NULL, NULL,
       NULL, 'nul \\u0000 and lone \\ud800 end', true, '[]', NULL, NULL, NULL, NULL, NULL,
       '{}', t.day + interval '2 seconds', NULL),
      (6, 1, 0, t.day, NULL, NULL, 'user', NULL, '', false, 'null', 'null', NULL, NULL, 0, 0,
       'null', t.day + interval '3 seconds', NULL),
      (6, 2, 0, t.day, NULL, 9007199254740991, 'user', E'\\u00e9 \\\\u0000 name', 'gone', false, '[]', NULL,
       1, NULL, NULL, NULL, '{"_": "message"}', t.day + interval '4 seconds', t.day + interval '5.000999 seconds')
    ) v`)
    yield* query(database, `
    INSERT INTO message_deletions (channel_id, message_id, deleted_at, received_at)
    SELECT c, m, date_trunc('day', now()) - make_interval(days => ${daysBack}) + interval '10 hours 5.000999 seconds', now()
    FROM (VALUES (6::bigint, 2), (5::bigint, 9)) d(c, m)`)
    yield* query(database, `
    INSERT INTO messages (channel_id, message_id, version, date, text, raw, received_at)
    SELECT 5 + m % 2, 10 + m, 0, date_trunc('day', now()) - make_interval(days => ${daysBack}), 'plain ' || m, '{}', now()
    FROM generate_series(1, 4) m`)
  })

/** The event's JSON as the API wrote it from `events`, before sql/0055. */
const fromObjects = (event: StoredEvent) =>
  JSON.stringify({
    cursor: "c",
    kind: event.kind,
    key: event.key,
    channelId: event.channelId,
    messageId: event.messageId,
    version: event.version,
    message: event.message,
    deletedAt: event.deletedAt,
    receivedAt: event.receivedAt
  })

/**
 * Waits until every event of `insertAwkwardEvents` is settled (the cluster's
 * other transactions hold new rows back a while; once settled a row stays
 * settled), then reads pages after every cursor, of 1, 3 and 100 events, with
 * and without a channel, both ways: the same events, cut at the same point,
 * and each event's JSON the same bytes. Returns how many events it compared.
 */
export const assertJsonMatchesEvents = (messages: MessageQuery["Service"], expectedEvents: number) =>
  Effect.gen(function*() {
    const all = yield* messages.events({ after: 0n, channelId: undefined, limit: 1000 }).pipe(
      Effect.repeat({ until: (events) => events.length >= expectedEvents, schedule: Schedule.spaced("100 millis"), times: 400 })
    )
    assert.strictEqual(all.length, expectedEvents)
    let compared = 0
    for (const after of [0n, ...all.map((event) => event.seq)]) {
      for (const channelId of [undefined, ...awkwardChannels]) {
        for (const limit of [1, 3, 100]) {
          const options = { after, channelId, limit }
          const [objects, json] = yield* Effect.all([messages.events(options), messages.eventsJson(options)])
          assert.deepStrictEqual(json.map((event) => event.seq), objects.map((event) => event.seq), JSON.stringify({ ...options, after: String(after) }))
          json.forEach((event, index) => {
            const written = `{"cursor":"c",${event.members}`
            assert.strictEqual(written, fromObjects(objects[index]!))
            JSON.parse(written)
          })
          compared += json.length
        }
      }
    }
    return compared
  })
