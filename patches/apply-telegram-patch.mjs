#!/usr/bin/env node
/**
 * Applies patches/telegram+<version>.patch to the installed `telegram`
 * (GramJS) package: run by `npm ci`/`npm install` as the root package's
 * postinstall, and by deploy/scripts/install.sh after its `npm ci --ignore-scripts`.
 * Why the patch exists: docs/architecture.md ("The GramJS patch").
 *
 *   node patches/apply-telegram-patch.mjs                 apply (idempotent)
 *   node patches/apply-telegram-patch.mjs --check         exit 1 unless applied
 *   node patches/apply-telegram-patch.mjs --revert        restore GramJS's own code
 *   node patches/apply-telegram-patch.mjs --modules DIR   another node_modules (default: ../node_modules)
 *
 * Each hunk is found by its text, not its line numbers: a hunk whose old text
 * is there once (and its new text is not) is applied, one whose new text is
 * there (and its old text is not) is already applied, anything else stops the
 * install with the file and hunk named. The installed version must be the
 * one the patch was made for: another version fails loudly, so a `telegram`
 * upgrade is a deliberate step (re-make the patch, or drop it).
 */
import * as Fs from "node:fs"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"

const here = Path.dirname(fileURLToPath(import.meta.url))
const args = process.argv.slice(2)
const mode = args.includes("--check") ? "check" : args.includes("--revert") ? "revert" : "apply"
const modulesAt = args.indexOf("--modules")
const modules = modulesAt >= 0 ? Path.resolve(args[modulesAt + 1] ?? "") : Path.join(here, "..", "node_modules")
const packageDir = Path.join(modules, "telegram")

const fail = (message) => {
  process.stderr.write(`telegram patch: ${message}\n`)
  process.exit(1)
}

const patches = Fs.readdirSync(here).filter((name) => /^telegram\+.+\.patch$/.test(name))
if (patches.length !== 1) fail(`expected exactly one patches/telegram+<version>.patch, found ${patches.length}`)
const patchFile = patches[0]
const wanted = patchFile.slice("telegram+".length, -".patch".length)

let installed
try {
  installed = JSON.parse(Fs.readFileSync(Path.join(packageDir, "package.json"), "utf8")).version
} catch (error) {
  fail(`cannot read ${Path.join(packageDir, "package.json")}: ${error.message}`)
}
if (installed !== wanted) {
  fail(
    `${patchFile} is for telegram ${wanted}, but ${installed} is installed in ${packageDir}: ` +
      "re-make the patch for this version (docs/architecture.md, \"The GramJS patch\") or pin telegram to " + wanted
  )
}

/** The unified diff as files, each with hunks of old and new text. */
const parse = (text) => {
  const files = []
  let file
  let hunk
  for (const line of text.split("\n")) {
    if (line.startsWith("+++ ")) {
      // "+++ b/network/MTProtoSender.js<TAB>date": the path after the first segment.
      const path = line.slice(4).split("\t")[0].replace(/^[^/]+\//, "")
      file = { path, hunks: [] }
      files.push(file)
      hunk = undefined
    } else if (line.startsWith("--- ") || line.startsWith("diff ") || line.startsWith("Only in ")) {
      hunk = undefined
    } else if (line.startsWith("@@")) {
      if (file === undefined) fail(`${patchFile}: a hunk before any file header`)
      hunk = { header: line, old: [], new: [] }
      file.hunks.push(hunk)
    } else if (hunk !== undefined) {
      if (line.startsWith(" ")) {
        hunk.old.push(line.slice(1))
        hunk.new.push(line.slice(1))
      } else if (line.startsWith("-")) hunk.old.push(line.slice(1))
      else if (line.startsWith("+")) hunk.new.push(line.slice(1))
      else if (line.startsWith("\\")) continue
      else hunk = undefined
    }
  }
  return files
}

const occurrences = (haystack, needle) => {
  let count = 0
  for (let at = haystack.indexOf(needle); at >= 0; at = haystack.indexOf(needle, at + 1)) count++
  return count
}

const files = parse(Fs.readFileSync(Path.join(here, patchFile), "utf8"))
if (files.length === 0) fail(`${patchFile} holds no file`)

let changed = 0
const writes = []
let alreadyThere = 0
const missing = []
for (const file of files) {
  const target = Path.join(packageDir, file.path)
  let content
  try {
    content = Fs.readFileSync(target, "utf8")
  } catch (error) {
    fail(`${target}: ${error.message}`)
  }
  let next = content
  file.hunks.forEach((hunk, index) => {
    const from = (mode === "revert" ? hunk.new : hunk.old).join("\n") + "\n"
    const to = (mode === "revert" ? hunk.old : hunk.new).join("\n") + "\n"
    const fromCount = occurrences(next, from)
    const toCount = occurrences(next, to)
    const where = `${file.path}, hunk ${index + 1} (${hunk.header})`
    if (toCount === 1 && fromCount === 0) {
      alreadyThere++
      return
    }
    if (mode === "check") {
      missing.push(where)
      return
    }
    if (fromCount !== 1 || toCount !== 0) {
      fail(`${where} does not apply to ${packageDir}: its ${mode === "revert" ? "patched" : "original"} text is there ${fromCount} time(s)`)
    }
    next = next.replace(from, () => to)
    changed++
  })
  if (next !== content) writes.push({ target, next })
}

// Written only once every hunk of every file is known to apply: a failure leaves GramJS as it was.
for (const { target, next } of writes) {
  const temporary = `${target}.patching`
  Fs.writeFileSync(temporary, next)
  Fs.renameSync(temporary, target)
}

if (mode === "check") {
  if (missing.length > 0) fail(`not applied to ${packageDir}: ${missing.join("; ")}`)
  process.stdout.write(`telegram patch: ${patchFile} is applied to ${packageDir}\n`)
} else {
  const verb = mode === "revert" ? "reverted" : "applied"
  process.stdout.write(
    `telegram patch: ${patchFile} ${changed === 0 ? `already ${verb}` : `${verb} (${changed} hunk(s))`} in ${packageDir}\n`
  )
}
