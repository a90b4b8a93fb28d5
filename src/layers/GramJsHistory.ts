/**
 * A channel's history read oldest first, one page of up to 100 messages at a
 * time, between two message ids, however many there are (no cap): what
 * too-long recovery (src/layers/GramJsTelegramSource.ts) and the re-read
 * window use. messages.getHistory pages newest first from `offset_id`; a
 * negative `add_offset` of a whole page turns it into "the page just above",
 * and `min_id`/`max_id` keep it inside the range.
 */
import { Effect } from "effect"
import { Api, helpers } from "telegram"
import type { CallError, GramJs } from "./GramJsClient.ts"
import { type Directory, makeDirectory } from "./GramJsMapping.ts"

const PAGE = 100

export interface HistoryPage {
  /** Ascending by id, all inside the range. */
  readonly messages: ReadonlyArray<Api.Message>
  readonly directory: Directory
  /** Ids in the range answered as MessageEmpty or service messages: present in the range but nothing to store. */
  readonly skippedIds: ReadonlyArray<number>
}

/** One page: the (up to 100) oldest messages with `after < id <= upTo`. */
export const historyPageAbove = (
  invoke: GramJs["invoke"],
  peer: Api.TypeInputPeer,
  after: number,
  upTo: number
): Effect.Effect<HistoryPage, CallError> =>
  invoke(
    new Api.messages.GetHistory({
      peer,
      offsetId: after + 1,
      offsetDate: 0,
      addOffset: -PAGE,
      limit: PAGE,
      maxId: upTo + 1,
      minId: after,
      hash: helpers.returnBigInt(0)
    })
  ).pipe(
    Effect.map((result): HistoryPage => {
      if (result instanceof Api.messages.MessagesNotModified) return { messages: [], directory: makeDirectory([], []), skippedIds: [] }
      const inRange = result.messages.filter((message) => message.id > after && message.id <= upTo)
      return {
        messages: inRange.filter((message): message is Api.Message => message instanceof Api.Message).sort((a, b) => a.id - b.id),
        directory: makeDirectory(result.users, result.chats),
        skippedIds: inRange.filter((message) => !(message instanceof Api.Message)).map((message) => message.id)
      }
    })
  )

/**
 * Every page with `after < id <= upTo`, oldest first, each handed to `onPage`
 * before the next is asked for (so a consumer's backpressure paces it).
 */
export const forEachHistoryPage = <E, E2, R>(
  call: (after: number) => Effect.Effect<HistoryPage, E, R>,
  after: number,
  upTo: number,
  onPage: (page: HistoryPage, newestId: number) => Effect.Effect<void, E2, R>
): Effect.Effect<void, E | E2, R> =>
  Effect.gen(function*() {
    let cursor = after
    while (cursor < upTo) {
      const page = yield* call(cursor)
      const ids = [...page.messages.map((message) => message.id), ...page.skippedIds]
      if (ids.length === 0) return
      const newest = Math.max(...ids)
      yield* onPage(page, newest)
      if (newest <= cursor) return
      cursor = newest
    }
  })
