import { Redacted } from "effect"

/** An endpoint's URL without its password, for logs and messages. */
export const withoutPassword = (url: Redacted.Redacted<string>): string => {
  const parsed = new URL(Redacted.value(url))
  if (parsed.password !== "") parsed.password = "***"
  return parsed.toString()
}
