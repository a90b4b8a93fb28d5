/**
 * Splits a SQL script into its statements. The @effect/sql-pg driver speaks
 * only the extended query protocol, which takes one statement per query, so a
 * migration file is run statement by statement (in one transaction).
 *
 * Understands what can hide a semicolon: quoted strings (with `''` and, in
 * E'' strings, backslash escapes), quoted identifiers, dollar-quoted bodies,
 * line comments and nested block comments. Chunks holding only comments are
 * dropped.
 */

const identifierCharacter = /[A-Za-z0-9_$]/
const dollarTag = /\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$/y

/** Index just past the closing `quote`; `''`-style doubling continues the literal. */
const skipQuoted = (script: string, from: number, quote: string, backslashEscapes: boolean): number => {
  let index = from + 1
  while (index < script.length) {
    const character = script[index]
    if (backslashEscapes && character === "\\") {
      index += 2
    } else if (character === quote) {
      if (script[index + 1] !== quote) return index + 1
      index += 2
    } else {
      index += 1
    }
  }
  return script.length
}

const skipBlockComment = (script: string, from: number): number => {
  let depth = 0
  let index = from
  while (index < script.length) {
    if (script.startsWith("/*", index)) {
      depth += 1
      index += 2
    } else if (script.startsWith("*/", index)) {
      depth -= 1
      index += 2
      if (depth === 0) return index
    } else {
      index += 1
    }
  }
  return script.length
}

const skipLineComment = (script: string, from: number): number => {
  const end = script.indexOf("\n", from)
  return end === -1 ? script.length : end + 1
}

const isEscapeStringStart = (script: string, index: number): boolean => {
  const previous = script[index - 1]
  return (previous === "E" || previous === "e") && !identifierCharacter.test(script[index - 2] ?? "")
}

export const splitStatements = (script: string): ReadonlyArray<string> => {
  const statements: Array<string> = []
  let start = 0
  let hasCode = false
  let index = 0
  const finishStatement = (end: number) => {
    if (hasCode) statements.push(script.slice(start, end).trim())
    start = end + 1
    hasCode = false
  }
  while (index < script.length) {
    const character = script[index]!
    if (script.startsWith("--", index)) {
      index = skipLineComment(script, index)
      continue
    }
    if (script.startsWith("/*", index)) {
      index = skipBlockComment(script, index)
      continue
    }
    if (character === ";") {
      finishStatement(index)
      index += 1
      continue
    }
    if (character.trim() !== "") hasCode = true
    if (character === "'") {
      index = skipQuoted(script, index, "'", isEscapeStringStart(script, index))
    } else if (character === "\"") {
      index = skipQuoted(script, index, "\"", false)
    } else if (character === "$" && !identifierCharacter.test(script[index - 1] ?? "")) {
      dollarTag.lastIndex = index
      const tag = dollarTag.exec(script)?.[0]
      if (tag === undefined) {
        index += 1
      } else {
        const close = script.indexOf(tag, index + tag.length)
        index = close === -1 ? script.length : close + tag.length
      }
    } else {
      index += 1
    }
  }
  finishStatement(script.length)
  return statements
}
