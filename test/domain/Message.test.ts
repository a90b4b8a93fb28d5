import { assert, describe, it } from "@effect/vitest"
import { Schema } from "effect"
import {
  Entity,
  eventKey,
  Media,
  MessageEventJson,
  encodeMessageEventJson,
  decodeMessageEvent
} from "../../src/domain/Message.ts"
import { Effect } from "effect"
import { created, deleted, edited, freshChannelId, makeMessage } from "../support/TestEvents.ts"

const channelId = freshChannelId()
const rich = makeMessage(channelId, 9, {
  text: "NUL\u0000 and a lone \ud800",
  entities: [new Entity({ type: "url", offset: 0, length: 3, url: "https://t.me/x" })],
  media: new Media({
    kind: "photo",
    mimeType: "image/jpeg",
    size: 1024,
    fileName: null,
    width: 800,
    height: 600,
    durationSeconds: null
  }),
  groupedId: "13570000000000000001"
})
const samples = [created(rich), edited(rich, rich.date + 5, "edited"), deleted(channelId, 9)]

describe("Message", () => {
  it("encodes events to the same JSON as the schema encoder", () => {
    const schemaEncode = Schema.encodeSync(MessageEventJson)
    for (const event of samples) assert.strictEqual(encodeMessageEventJson(event), schemaEncode(event))
  })

  it("gives every version and the deletion its own stable key", () => {
    assert.deepStrictEqual(samples.map(eventKey), [
      `${channelId}:9:0`,
      `${channelId}:9:${rich.date + 5}`,
      `${channelId}:9:deleted`
    ])
  })

  it.effect("rejects a payload that is not an event, naming the field", () =>
    Effect.gen(function*() {
      const error = yield* decodeMessageEvent({ _tag: "MessageDeleted", channelId: -5, messageId: 1 }).pipe(Effect.flip)
      assert.include(error.message, "channelId")
    }))
})
