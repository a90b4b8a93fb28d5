/**
 * The second line of defence on one host: an exclusive flock(2) on
 * `<session file>.lock` for as long as this process uses the account. Node
 * has no flock, so util-linux's flock(1) holds it in a child whose stdin is
 * a pipe from us: when this process ends in any way (SIGKILL included) the
 * pipe closes, the child exits and the kernel drops the lock. A second
 * process on the same host, with the same session file, cannot take it even
 * if the database lease said it could. The lock file is separate from the
 * session file because `login` replaces that file by rename (a new inode).
 */
import { Effect } from "effect"
import { spawn } from "node:child_process"
import { SessionFileLocked } from "../services/SessionFiles.ts"

/** flock's exit code when the lock is held elsewhere (`-E`). */
const HELD = 75

/** Scoped: holds the lock until the scope closes; fails at once when it is held elsewhere. */
export const lockSessionFile = (sessionFile: string) => {
  const lockFile = `${sessionFile}.lock`
  return Effect.acquireRelease(
    Effect.callback<ReturnType<typeof spawn>, SessionFileLocked>((resume) => {
      const child = spawn("flock", ["--exclusive", "--nonblock", "--conflict-exit-code", String(HELD), lockFile, "sh", "-c", "echo locked; exec cat >/dev/null"], {
        stdio: ["pipe", "pipe", "pipe"]
      })
      let stderr = ""
      child.stderr.on("data", (chunk: Buffer) => {
        stderr += chunk.toString()
      })
      child.stdout.once("data", () => resume(Effect.succeed(child)))
      child.once("error", (error) => resume(Effect.fail(new SessionFileLocked({ path: sessionFile, detail: `flock(1) could not run: ${error.message}` }))))
      child.once("exit", (code) =>
        resume(Effect.fail(new SessionFileLocked({
          path: sessionFile,
          detail: code === HELD ? `${lockFile} is locked` : `flock(1) exited with ${code}: ${stderr.trim()}`
        }))))
      return Effect.sync(() => child.kill())
    }),
    (child) =>
      Effect.callback<void>((resume) => {
        if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
        child.once("exit", () => resume(Effect.void))
        child.stdin?.end()
      })
  ).pipe(Effect.asVoid)
}
