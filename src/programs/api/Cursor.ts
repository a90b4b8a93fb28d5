/**
 * The opaque event cursor: base64url of `v1:<event_seq>`. The version prefix
 * lets the encoding change later without breaking stored checkpoints.
 */
import { Effect, Option } from "effect"
import { InvalidRequest } from "./Errors.ts"

const prefix = "v1:"
const maxSeq = 2n ** 63n - 1n

export const encodeCursor = (seq: bigint): string => Buffer.from(`${prefix}${seq}`, "utf8").toString("base64url")

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
