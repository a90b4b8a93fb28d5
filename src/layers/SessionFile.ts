/**
 * The session file: a GramJS StringSession, which is the account's full
 * credential (its auth key). Read with checks (missing, too open, corrupt),
 * written atomically (temp file in the same directory, fsync, rename, fsync
 * of the directory) so a crash never leaves half a session, with mode 0600 in
 * a 0700 directory. The session itself only ever travels `Redacted`.
 */
import { Effect, Layer, Redacted } from "effect"
import { createHash, randomBytes } from "node:crypto"
import * as Fs from "node:fs/promises"
import * as Path from "node:path"
// GramJS's modules import each other in a cycle that only resolves when the package root loads first.
import "telegram"
import { StringSession } from "telegram/sessions/index.js"
import { SessionFiles } from "../services/SessionFiles.ts"
import { SessionFileError } from "../services/TelegramSource.ts"
import { lockSessionFile } from "./FlockSessionLock.ts"

export interface StoredSession {
  readonly session: Redacted.Redacted<string>
  readonly dcId: number
  readonly serverAddress: string
  /**
   * Names the auth key without revealing it (the first 8 bytes of its
   * SHA-256, in hex): a key Telegram refused is recorded by this
   * (sql/0035_account_login_needed.up.sql), never by the key itself.
   */
  readonly keyId: string
}

const AUTH_KEY_BYTES = 256

const errnoOf = (cause: unknown): string | undefined =>
  typeof cause === "object" && cause !== null && "code" in cause && typeof cause.code === "string"
    ? cause.code
    : undefined

const describe = (cause: unknown): string => {
  const code = errnoOf(cause)
  const text = cause instanceof Error ? cause.message : String(cause)
  return code === undefined ? text : `${code}: ${text.replace(/^[A-Z]+: /, "")}`
}

const octal = (mode: number) => `0${(mode & 0o777).toString(8).padStart(3, "0")}`

/** Checks the structure of a session string; the error detail never quotes it. */
export const parseSession = (
  path: string,
  session: Redacted.Redacted<string>
): Effect.Effect<StoredSession, SessionFileError> =>
  Effect.suspend(() => {
    const corrupt = (detail: string) => Effect.fail(new SessionFileError({ path, problem: "corrupt", detail }))
    const text = Redacted.value(session)
    if (text.length === 0) return corrupt("the file is empty")
    if (!text.startsWith("1")) return corrupt("it does not start with a GramJS StringSession version")
    if (!/^[A-Za-z0-9+/]+=*$/.test(text.slice(1))) return corrupt("it is not base64")
    let parsed: StringSession
    try {
      parsed = new StringSession(text)
    } catch (cause) {
      return corrupt(`GramJS cannot read it (${cause instanceof Error ? cause.message : "unknown error"})`)
    }
    const key = (parsed as unknown as { readonly _key: Buffer | undefined })._key
    if (key === undefined || key.length !== AUTH_KEY_BYTES) {
      return corrupt(`the auth key is ${key?.length ?? 0} bytes instead of ${AUTH_KEY_BYTES}`)
    }
    if (parsed.dcId < 1 || parsed.serverAddress.length === 0) return corrupt("it names no data centre")
    return Effect.succeed({
      session,
      dcId: parsed.dcId,
      serverAddress: parsed.serverAddress,
      keyId: createHash("sha256").update(key).digest("hex").slice(0, 16)
    })
  })

/** Warns when the file or its directory is readable by others than the gateway's user. */
const warnIfTooOpen = Effect.fn("SessionFile.warnIfTooOpen")(function*(path: string, fileMode: number) {
  if ((fileMode & 0o077) !== 0) {
    yield* Effect.logWarning(
      `session file ${path} has mode ${octal(fileMode)}, wider than 0600: anyone who can read it can use the Telegram account. Run: chmod 600 ${path}`
    )
  }
  const directory = Path.dirname(path)
  const directoryStat = yield* Effect.promise(() => Fs.stat(directory).then((stat) => stat.mode, () => undefined))
  if (directoryStat !== undefined && (directoryStat & 0o077) !== 0) {
    yield* Effect.logWarning(
      `session directory ${directory} has mode ${octal(directoryStat)}, wider than 0700. Run: chmod 700 ${directory}`
    )
  }
})

/** Reads and checks the session file, warning about loose permissions. */
export const readSession = Effect.fn("SessionFile.read")(function*(path: string) {
  const stat = yield* Effect.tryPromise({
    try: () => Fs.stat(path),
    catch: (cause) =>
      new SessionFileError({ path, problem: errnoOf(cause) === "ENOENT" ? "missing" : "unreadable", detail: describe(cause) })
  })
  if (!stat.isFile()) {
    return yield* new SessionFileError({ path, problem: "unreadable", detail: "it is not a regular file" })
  }
  yield* warnIfTooOpen(path, stat.mode)
  const text = yield* Effect.tryPromise({
    try: () => Fs.readFile(path, "utf8"),
    catch: (cause) => new SessionFileError({ path, problem: "unreadable", detail: describe(cause) })
  })
  return yield* parseSession(path, Redacted.make(text.trim()))
})

/** Creates the directory (0700) if needed; an existing one keeps its mode, with a warning if too open. */
const ensureDirectory = (path: string, directory: string) =>
  Effect.tryPromise({
    try: async () => {
      const created = await Fs.mkdir(directory, { recursive: true, mode: 0o700 })
      // mkdir's mode is filtered by the umask; the leaf must end up exactly 0700.
      if (created !== undefined) await Fs.chmod(directory, 0o700)
      return created !== undefined
    },
    catch: (cause) => new SessionFileError({ path, problem: "unwritable", detail: describe(cause) })
  })

const syncDirectory = async (directory: string) => {
  const handle = await Fs.open(directory, "r")
  try {
    await handle.sync()
  } finally {
    await handle.close()
  }
}

/** Replaces the session file atomically with mode 0600. */
export const writeSession = Effect.fn("SessionFile.write")(function*(path: string, session: Redacted.Redacted<string>) {
  const directory = Path.dirname(path)
  const created = yield* ensureDirectory(path, directory)
  if (!created) {
    const mode = yield* Effect.promise(() => Fs.stat(directory).then((stat) => stat.mode))
    if ((mode & 0o077) !== 0) {
      yield* Effect.logWarning(
        `session directory ${directory} has mode ${octal(mode)}, wider than 0700. Run: chmod 700 ${directory}`
      )
    }
  }
  const temporary = Path.join(directory, `.${Path.basename(path)}.${randomBytes(6).toString("hex")}.tmp`)
  yield* Effect.tryPromise({
    try: async () => {
      const handle = await Fs.open(temporary, "wx", 0o600)
      try {
        await handle.writeFile(`${Redacted.value(session)}\n`, "utf8")
        await handle.chmod(0o600)
        await handle.sync()
      } finally {
        await handle.close()
      }
      await Fs.rename(temporary, path)
      await syncDirectory(directory)
    },
    catch: (cause) => new SessionFileError({ path, problem: "unwritable", detail: describe(cause) })
  }).pipe(Effect.tapError(() => Effect.promise(() => Fs.rm(temporary, { force: true }))))
})

/** Deletes the session file; false when there was none. */
export const removeSession = Effect.fn("SessionFile.remove")(function*(path: string) {
  return yield* Effect.tryPromise({
    try: () => Fs.unlink(path).then(() => true),
    catch: (cause) => cause
  }).pipe(
    Effect.catch((cause) =>
      errnoOf(cause) === "ENOENT"
        ? Effect.succeed(false)
        : Effect.fail(new SessionFileError({ path, problem: "unwritable", detail: describe(cause) }))
    )
  )
})

/** SessionFiles on the local disk: GramJS StringSession files, locked with flock(1). */
export const layer = Layer.succeed(SessionFiles, SessionFiles.of({
  keyId: (path) => Effect.map(readSession(path), (stored) => stored.keyId),
  write: writeSession,
  remove: removeSession,
  lock: lockSessionFile
}))
