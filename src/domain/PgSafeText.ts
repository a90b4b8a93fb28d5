/**
 * Text that PostgreSQL can hold. It rejects U+0000 in `text` and `jsonb`, and
 * a lone UTF-16 surrogate cannot be encoded as UTF-8 on the wire (it would
 * arrive as U+FFFD). Telegram allows both, and nothing may be dropped:
 *
 * - message text is stored as its JSON string escape, with a flag, and read
 *   back exactly (`encodeText` / `decodeText`);
 * - strings inside JSON documents (entities, media, raw) and the sender name
 *   have just the offending characters replaced by their `\u0000`-style
 *   escape text (`escapeUnsafe` / `escapeUnsafeDeep`).
 */

/** NUL, a high surrogate not followed by a low one, or a low one not preceded by a high one. */
const unsafeCharacter = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/
const unsafeCharacters = new RegExp(unsafeCharacter.source, "g")

export const hasUnsafeCharacters = (text: string): boolean => unsafeCharacter.test(text)

export interface StorableText {
  readonly text: string
  /** When true, `text` is a JSON string escape of the original. */
  readonly escaped: boolean
}

export const encodeText = (text: string): StorableText =>
  hasUnsafeCharacters(text) ? { text: JSON.stringify(text).slice(1, -1), escaped: true } : { text, escaped: false }

export const decodeText = (text: string, escaped: boolean): string =>
  escaped ? (JSON.parse(`"${text}"`) as string) : text

const escapeCharacter = (character: string): string =>
  `\\u${character.charCodeAt(0).toString(16).padStart(4, "0")}`

/** Replaces each unsafe character by its six-character escape text, e.g. `\u0000`. */
export const escapeUnsafe = (text: string): string =>
  hasUnsafeCharacters(text) ? text.replace(unsafeCharacters, escapeCharacter) : text

/**
 * Whether `escapeUnsafeDeep` would give back an equal value: every string and
 * key safe, no bigint, no `toJSON`. It allocates nothing, where the copy
 * allocates every object and array of the value again, for each event's raw
 * payload, entities and media; almost every value has nothing to escape.
 */
const needsNoEscape = (value: unknown): boolean => {
  switch (typeof value) {
    case "string":
      return !hasUnsafeCharacters(value)
    case "bigint":
      return false
    case "object": {
      if (value === null) return true
      if (Array.isArray(value)) {
        for (let index = 0; index < value.length; index++) if (!needsNoEscape(value[index])) return false
        return true
      }
      if ("toJSON" in value && typeof value.toJSON === "function") return false
      const keys = Object.keys(value)
      for (let index = 0; index < keys.length; index++) {
        const key = keys[index]!
        if (hasUnsafeCharacters(key) || !needsNoEscape((value as Record<string, unknown>)[key])) return false
      }
      return true
    }
    default:
      return true
  }
}

/** The escaped copy, for a value with something to escape. */
const escapedCopy = (value: unknown): unknown => {
  if (typeof value === "string") return escapeUnsafe(value)
  if (typeof value === "bigint") return value.toString()
  if (Array.isArray(value)) return value.map(escapedCopy)
  if (value !== null && typeof value === "object") {
    if ("toJSON" in value && typeof value.toJSON === "function") return escapedCopy(value.toJSON())
    // No prototype: a key named `__proto__` stays a key instead of setting one.
    const escaped: Record<string, unknown> = Object.create(null)
    for (const [key, entry] of Object.entries(value)) escaped[escapeUnsafe(key)] = escapedCopy(entry)
    return escaped
  }
  return value
}

/**
 * `escapeUnsafe` on every string and key of a JSON-like value. A bigint
 * becomes its decimal string (JSON has no int64) and an object with `toJSON`
 * its JSON form, as `JSON.stringify` would. A value with nothing to change is
 * returned as it is, not copied: the same JSON, without the allocations.
 */
export const escapeUnsafeDeep = (value: unknown): unknown => needsNoEscape(value) ? value : escapedCopy(value)
