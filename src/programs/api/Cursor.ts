/**
 * The opaque event cursor: base64url of `v1:<event_seq>`. The version prefix
 * lets the encoding change later without breaking stored checkpoints.
 */
import { Effect, Option } from "effect"
import { InvalidRequest } from "./Errors.ts"

const prefix = "v1:"
const maxSeq = 2n ** 63n - 1n

const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

/**
 * base64url of an ASCII string, unpadded, as `Buffer`'s "base64url" gives it:
 * a poll encodes a cursor per event, and a Buffer per cursor was the larger
 * cost (docs/benchmarks.md, the API's CPU per poll).
 */
const base64urlAscii = (text: string): string => {
  let out = ""
  let i = 0
  for (; i + 2 < text.length; i += 3) {
    const n = (text.charCodeAt(i) << 16) | (text.charCodeAt(i + 1) << 8) | text.charCodeAt(i + 2)
    out += alphabet.charAt(n >> 18) + alphabet.charAt((n >> 12) & 63) + alphabet.charAt((n >> 6) & 63) + alphabet.charAt(n & 63)
  }
  if (i < text.length) {
    const two = i + 1 < text.length
    const n = (text.charCodeAt(i) << 16) | (two ? text.charCodeAt(i + 1) << 8 : 0)
    out += alphabet.charAt(n >> 18) + alphabet.charAt((n >> 12) & 63) + (two ? alphabet.charAt((n >> 6) & 63) : "")
  }
  return out
}

export const encodeCursor = (seq: bigint): string => base64urlAscii(`${prefix}${seq}`)

/** `None` for anything that is not a cursor this API issued. */
export const parseCursor = (cursor: string): Option.Option<bigint> => {
  if (!/^[A-Za-z0-9_-]{1,40}$/.test(cursor)) return Option.none()
  const match = /^v1:(0|[1-9][0-9]{0,18})$/.exec(Buffer.from(cursor, "base64url").toString("utf8"))
  if (match?.[1] === undefined) return Option.none()
  const seq = BigInt(match[1])
  return seq <= maxSeq ? Option.some(seq) : Option.none()
}

const malformed = (parameter: string) =>
  new InvalidRequest({
    code: "malformed_cursor",
    message:
      `${parameter} is not a cursor issued by this API: pass the nextCursor of a previous page or the cursor of an event`
  })

/** A cursor that must be given (a checkpoint): empty or malformed is a 400. */
export const requireCursor = (cursor: string, parameter: string) =>
  Option.match(parseCursor(cursor), { onNone: () => Effect.fail(malformed(parameter)), onSome: Effect.succeed })

/** The start of the stream when absent; a 400 that says what to do when malformed. */
export const decodeCursor = (cursor: string | undefined, parameter: string) =>
  cursor === undefined || cursor === ""
    ? Effect.succeed(0n)
    : Option.match(parseCursor(cursor), {
      onNone: () =>
        Effect.fail(
          new InvalidRequest({
            code: "malformed_cursor",
            message:
              `${parameter} is not a cursor issued by this API: pass the nextCursor of a previous page or the cursor of an event, or omit it to start from the beginning`
          })
        ),
      onSome: Effect.succeed
    })
