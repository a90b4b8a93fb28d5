/**
 * `telegram-gateway backfill`, the operator's side: it never connects to
 * Telegram (the running gateway owns the session; a second connection would
 * meet AUTH_KEY_DUPLICATED). It finds the account whose telegram.channels
 * names the chat, checks that a gateway owns that account now, submits a
 * request (src/services/BackfillRequests.ts) and follows it until the owner
 * marks it done, printing progress: a bar on a terminal, plain lines
 * otherwise. The owner's side is src/layers/GramJsBackfill.ts.
 */
import { Clock, Duration, Effect, Option, Runtime, Schema } from "effect"
import { type ChatReference, matches, parseChatReference } from "../services/ChatReference.ts"
import { AccountLeases } from "../services/AccountLeases.ts"
import { type BackfillRequest, BackfillRequests, type BackfillSpec } from "../services/BackfillRequests.ts"
import { ChannelRegistry, type KnownChat } from "../services/ChannelRegistry.ts"
import { ExitCode } from "../services/ExitCodes.ts"
import { TelegramConfig } from "../services/GatewayConfig.ts"
import { accountsOf } from "./Accounts.ts"

/** The command line cannot be served as given (sysexits EX_USAGE): a bad range, or a chat no account listens to. */
export class BackfillUsage extends Schema.TaggedError<BackfillUsage>()("BackfillUsage", { detail: Schema.String }) {
  override readonly [Runtime.errorExitCode] = ExitCode.backfillUsage
  override get message(): string {
    return `backfill: ${this.detail}`
  }
}

/** No gateway process owns the account now (sysexits EX_UNAVAILABLE): nobody could serve the request. */
export class BackfillNoOwner extends Schema.TaggedError<BackfillNoOwner>()("BackfillNoOwner", { account: Schema.String }) {
  override readonly [Runtime.errorExitCode] = ExitCode.backfillNoOwner
  override get message(): string {
    return `backfill: no gateway process owns account ${this.account} now, so nothing can read its history (only the owner may use the session). Start 'telegram-gateway run' with this database and configuration (or wait for a standby to take over), then try again`
  }
}

/** The owner gave up on the request (Telegram refused the chat, ...). */
export class BackfillFailed extends Schema.TaggedError<BackfillFailed>()("BackfillFailed", {
  id: Schema.Number,
  error: Schema.String
}) {
  override get message(): string {
    return `backfill #${this.id} failed: ${this.error}`
  }
}

/** Not done within --timeout (sysexits EX_TEMPFAIL): the request goes on in the gateway. */
export class BackfillTimedOut extends Schema.TaggedError<BackfillTimedOut>()("BackfillTimedOut", {
  id: Schema.Number,
  timeout: Schema.String,
  status: Schema.String
}) {
  override readonly [Runtime.errorExitCode] = ExitCode.backfillTimedOut
  override get message(): string {
    return `backfill #${this.id} not done within ${this.timeout} (it is ${this.status}); it goes on in the gateway: run the same command again to follow it`
  }
}

export interface BackfillOptions {
  readonly channel: string
  readonly account: Option.Option<string>
  readonly since: Option.Option<string>
  readonly fromId: Option.Option<number>
  readonly until: Option.Option<string>
  readonly untilId: Option.Option<number>
  readonly timeout: Duration.Duration
  /** A progress bar redrawn in place (a terminal), or plain lines. */
  readonly terminal: boolean
  readonly print: (text: string) => Effect.Effect<void>
}

const parseDate = (flag: string, text: Option.Option<string>) =>
  Option.match(text, {
    onNone: () => Effect.succeed(null),
    onSome: (value) => {
      const date = new Date(value)
      return Number.isNaN(date.getTime())
        ? Effect.fail(new BackfillUsage({ detail: `--${flag} ${value} is not a date (use 2026-11-01 or 2026-11-01T12:00:00Z)` }))
        : Effect.succeed(date)
    }
  })

const positive = (flag: string, value: Option.Option<number>) =>
  Option.match(value, {
    onNone: () => Effect.succeed(null),
    onSome: (id) =>
      Number.isInteger(id) && id > 0 ? Effect.succeed(id) : Effect.fail(new BackfillUsage({ detail: `--${flag} must be a positive message id` }))
  })

/** Two references name the same chat: directly, or through the registry (an id on one side, a username on the other). */
const sameChat = (a: ChatReference, b: ChatReference, known: ReadonlyArray<KnownChat>) => {
  if (a._tag === "Username" && b._tag === "Username") return a.username.toLowerCase() === b.username.toLowerCase()
  if (a._tag === "Id" && b._tag === "Id") return a.id === b.id && (a.kind === "any" || b.kind === "any" || a.kind === b.kind)
  return known.some((chat) => matches(a, chat) && matches(b, chat))
}

/** The request to submit: the chat's account and its telegram.channels entry, and the range. */
export const requestSpec = (options: BackfillOptions) =>
  Effect.gen(function*() {
    const since = yield* parseDate("since", options.since)
    const until = yield* parseDate("until", options.until)
    const fromId = yield* positive("from-id", options.fromId)
    const untilId = yield* positive("until-id", options.untilId)
    if (since !== null && fromId !== null) return yield* new BackfillUsage({ detail: "give --since or --from-id, not both" })
    if (until !== null && untilId !== null) return yield* new BackfillUsage({ detail: "give --until or --until-id, not both" })
    if (since !== null && until !== null && until <= since) return yield* new BackfillUsage({ detail: "--until must be after --since" })
    if (fromId !== null && untilId !== null && untilId < fromId) return yield* new BackfillUsage({ detail: "--until-id must not be below --from-id" })

    const wanted = yield* parseChatReference(options.channel).pipe(
      Effect.mapError((error) => new BackfillUsage({ detail: `--channel ${options.channel}: ${error.reason}` }))
    )
    const known = yield* (yield* ChannelRegistry).list
    const accounts = (yield* accountsOf(yield* TelegramConfig)).filter((account) =>
      Option.isNone(options.account) || account.name === options.account.value
    )
    if (Option.isSome(options.account) && accounts.length === 0) {
      return yield* new BackfillUsage({ detail: `--account ${options.account.value}: telegram.accounts has no such account` })
    }
    const candidates: Array<{ readonly account: string; readonly entry: string }> = []
    for (const account of accounts) {
      for (const entry of account.config.channels) {
        const reference = yield* parseChatReference(entry).pipe(Effect.option)
        if (Option.isSome(reference) && sameChat(wanted, reference.value, known)) candidates.push({ account: account.name, entry })
      }
    }
    const configured = accounts.flatMap((account) => account.config.channels.map((entry) => `${entry} (${account.name})`))
    if (candidates.length === 0) {
      return yield* new BackfillUsage({
        detail: `${options.channel} is not among telegram.channels${Option.isSome(options.account) ? ` of account ${options.account.value}` : ""}, and only a chat the gateway listens to can be backfilled (configured: ${configured.join(", ") || "none"})`
      })
    }
    const accountsNamed = [...new Set(candidates.map((candidate) => candidate.account))]
    if (accountsNamed.length > 1) {
      return yield* new BackfillUsage({ detail: `${options.channel} is listened to by accounts ${accountsNamed.join(", ")}: choose one with --account` })
    }
    const chosen = candidates[0]!
    return { account: chosen.account, channel: chosen.entry, since, until, fromId, untilId } satisfies BackfillSpec
  })

const BAR = 30

const count = (n: number) => n.toLocaleString("en-US")

/** One progress report: `line` for plain output, `bar` for a terminal. */
export const describeProgress = (request: BackfillRequest, elapsedSeconds: number) => {
  const head = `backfill #${request.id} of ${request.channel}`
  if (request.status === "pending") return { line: `${head}: queued, waiting for the owner of account ${request.account}`, bar: `${head}: queued` }
  if (request.afterId === null || request.upToId === null) return { line: `${head}: starting`, bar: `${head}: starting` }
  const span = Math.max(0, request.upToId - request.afterId)
  const at = Math.min(request.upToId, Math.max(request.afterId, request.cursorId ?? request.afterId))
  const share = span === 0 ? 1 : (at - request.afterId) / span
  const percent = Math.floor(share * 100)
  const rate = elapsedSeconds > 0 ? Math.round(request.messages / elapsedSeconds) : 0
  const filled = Math.round(share * BAR)
  return {
    line: `${head}: ${percent}% (message ids up to ${at} of (${request.afterId}, ${request.upToId}]), ${count(request.messages)} message(s) committed`,
    bar: `[${"#".repeat(filled)}${".".repeat(BAR - filled)}] ${String(percent).padStart(3)}%  id ${count(at)} of ${count(request.upToId)}  ${count(request.messages)} messages  ${count(rate)} msg/s`
  }
}

const POLL = Duration.millis(500)
/** Plain lines: at most this often while nothing but progress changes. */
const LINE_EVERY_MS = 5_000

/** Submits the request (or follows its unfinished twin) and waits for its end. */
export const backfill = (options: BackfillOptions) =>
  Effect.gen(function*() {
    const spec = yield* requestSpec(options)
    const leases = yield* AccountLeases
    const requests = yield* BackfillRequests
    const ownerLive = leases.holders([spec.account]).pipe(Effect.map((holders) => holders[0]?.live === true))
    if (!(yield* ownerLive)) return yield* new BackfillNoOwner({ account: spec.account })
    const { request: submitted, attached } = yield* requests.submit(spec)
    yield* options.print(
      attached
        ? `backfill #${submitted.id} of ${spec.channel} (account ${spec.account}) was already queued with this range: following it`
        : `backfill #${submitted.id} of ${spec.channel} (account ${spec.account}) queued`
    )
    const clock = yield* Clock.Clock
    const now = () => clock.currentTimeMillisUnsafe()
    const started = now()
    let lastLine = ""
    let lastLineAt = 0
    let ownerGone = false
    let lastOwnerCheck = now()
    const follow = Effect.gen(function*() {
      while (true) {
        const request = yield* requests.get(submitted.id)
        if (request === undefined) return yield* new BackfillFailed({ id: submitted.id, error: "the request disappeared from backfill_requests" })
        const elapsed = (now() - (request.startedAt?.getTime() ?? started)) / 1000
        const progress = describeProgress(request, Math.max(elapsed, 0.001))
        if (options.terminal) {
          yield* options.print(`\r${progress.bar}`)
        } else if (progress.line !== lastLine && (now() - lastLineAt >= LINE_EVERY_MS || request.status !== "running")) {
          lastLine = progress.line
          lastLineAt = now()
          yield* options.print(progress.line)
        }
        if (request.status === "done") {
          const seconds = Math.round((now() - started) / 100) / 10
          yield* options.print(`${options.terminal ? "\n" : ""}backfill #${request.id} of ${request.channel} done: ${count(request.messages)} message(s) committed from message ids (${request.afterId}, ${request.upToId}] in ${seconds} s`)
          return request
        }
        if (request.status === "failed") {
          if (options.terminal) yield* options.print("\n")
          return yield* new BackfillFailed({ id: request.id, error: request.error ?? "no reason given" })
        }
        if (now() - lastOwnerCheck >= LINE_EVERY_MS) {
          lastOwnerCheck = now()
          const live = yield* ownerLive
          if (!live && !ownerGone) {
            yield* options.print(`${options.terminal ? "\n" : ""}no gateway owns account ${spec.account} now: backfill #${request.id} resumes where it stopped when one takes it over`)
          }
          ownerGone = !live
        }
        yield* Effect.sleep(POLL)
      }
    })
    return yield* follow.pipe(
      Effect.timeoutOrElse({
        duration: options.timeout,
        orElse: () =>
          requests.get(submitted.id).pipe(
            Effect.flatMap((request) =>
              Effect.fail(new BackfillTimedOut({ id: submitted.id, timeout: Duration.format(options.timeout), status: request?.status ?? "gone" }))
            )
          )
      })
    )
  }).pipe(Effect.withSpan("Backfill.run"))
