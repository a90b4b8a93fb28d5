/** `--account NAME`, shared by the commands that use one account's session (login, logout, channels). */
import { Flag } from "effect/cli"

export const accountFlag = (what: string) =>
  Flag.String("account").pipe(
    Flag.withDescription(`${what} (default: telegram.sessionFile)`),
    Flag.optional
  )
