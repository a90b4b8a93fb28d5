/** A failure's cause as one line for an error message or a log: the Error's message, or the value itself. */
export const describeCause = (cause: unknown): string =>
  cause instanceof Error ? cause.message : typeof cause === "string" ? cause : JSON.stringify(cause) ?? String(cause)
