/**
 * The import rules of CONTRIBUTING.md, read from the TypeScript imports of
 * src/ (the compiler's own scanner, so `import type`, `export … from` and
 * dynamic imports count too):
 *
 * - a folder imports only itself and the folders below it:
 *   domain, simulator < services < layers | programs < main < bin
 *   (layers and programs never import each other);
 * - nothing in src/programs imports a library client (GramJS, ioredis,
 *   amqplib, pg, @effect/sql-pg): programs get those through services, which
 *   the composition roots (src/main) make real;
 * - `telegram` (GramJS) is imported only under src/layers, and by the
 *   simulator, which is Telegram's side of the protocol, not a client;
 * - `@effect/platform-node` is imported by module, never by its index (which
 *   loads every module of the package into the daemon's heap);
 * - no import cycle.
 */
import { assert, describe, it } from "@effect/vitest"
import { readdirSync, readFileSync } from "node:fs"
import * as Path from "node:path"
import ts from "typescript"

/** Lower folders first; a folder may import its own and those of a lower rank. */
const rank: Record<string, number> = { domain: 0, simulator: 0, services: 1, layers: 2, programs: 2, main: 3, bin: 4 }

const libraryClients = ["telegram", "ioredis", "amqplib", "pg", "@effect/sql-pg"]

/** `telegram/sessions/index.js` is the package `telegram`; `@effect/sql-pg/PgClient` is `@effect/sql-pg`. */
const packageOf = (specifier: string): string => {
  const parts = specifier.split("/")
  return specifier.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0] ?? specifier
}

/** `src/programs/api/Server.ts` → `programs`. */
const folderOf = (file: string): string => file.split("/")[1] ?? ""

/** Every violation in a source tree given as path (relative to the repository, under src/) → text. */
export const violations = (files: ReadonlyMap<string, string>): ReadonlyArray<string> => {
  const found: Array<string> = []
  const graph = new Map<string, Array<string>>()
  for (const [file, text] of files) {
    const folder = folderOf(file)
    const edges: Array<string> = []
    graph.set(file, edges)
    if (rank[folder] === undefined) found.push(`${file}: src/${folder} is not a known folder (add it to the ranks)`)
    for (const { fileName: specifier } of ts.preProcessFile(text, true, true).importedFiles) {
      if (specifier.startsWith(".")) {
        const target = Path.posix.normalize(Path.posix.join(Path.posix.dirname(file), specifier))
        if (!target.startsWith("src/")) continue
        edges.push(target)
        const targetFolder = folderOf(target)
        if (targetFolder !== folder && !((rank[targetFolder] ?? Infinity) < (rank[folder] ?? -Infinity))) {
          found.push(`${file} imports ${target}: src/${folder} may not import src/${targetFolder}`)
        }
        continue
      }
      const name = packageOf(specifier)
      if (folder === "programs" && libraryClients.includes(name)) {
        found.push(`${file} imports the library client ${specifier}: reach it through a service`)
      }
      if (name === "telegram" && folder !== "layers" && folder !== "simulator") {
        found.push(`${file} imports ${specifier}: GramJS stays under src/layers`)
      }
      if (specifier === "@effect/platform-node") {
        found.push(`${file} imports the index of @effect/platform-node: import the module it uses`)
      }
    }
  }
  // Cycles: strongly connected components (Tarjan) of more than one file, or a file importing itself.
  let counter = 0
  const index = new Map<string, number>()
  const low = new Map<string, number>()
  const stack: Array<string> = []
  const onStack = new Set<string>()
  const visit = (file: string) => {
    index.set(file, counter)
    low.set(file, counter)
    counter++
    stack.push(file)
    onStack.add(file)
    for (const next of graph.get(file) ?? []) {
      if (!graph.has(next)) continue
      if (!index.has(next)) {
        visit(next)
        low.set(file, Math.min(low.get(file)!, low.get(next)!))
      } else if (onStack.has(next)) {
        low.set(file, Math.min(low.get(file)!, index.get(next)!))
      }
    }
    if (low.get(file) === index.get(file)) {
      const component: Array<string> = []
      let member: string | undefined
      do {
        member = stack.pop()!
        onStack.delete(member)
        component.push(member)
      } while (member !== file)
      if (component.length > 1 || (graph.get(file) ?? []).includes(file)) {
        found.push(`import cycle: ${component.sort().join(" ⇄ ")}`)
      }
    }
  }
  for (const file of [...graph.keys()].sort()) if (!index.has(file)) visit(file)
  return found
}

const root = Path.resolve(import.meta.dirname, "..")

const sourceTree = (): ReadonlyMap<string, string> => {
  const files = new Map<string, string>()
  for (const entry of readdirSync(Path.join(root, "src"), { recursive: true, withFileTypes: true })) {
    if (!entry.isFile() || !entry.name.endsWith(".ts")) continue
    const absolute = Path.join(entry.parentPath, entry.name)
    files.set(Path.relative(root, absolute).split(Path.sep).join("/"), readFileSync(absolute, "utf8"))
  }
  return files
}

describe("the imports of src/", () => {
  it("follow the rules of CONTRIBUTING.md", () => {
    const tree = sourceTree()
    assert.isAbove(tree.size, 100, "src/ was read")
    assert.deepStrictEqual(violations(tree), [])
  })

  it("a planted violation of each rule is reported", () => {
    const tree = new Map([
      ["src/domain/A.ts", `import { b } from "./B.ts"\nexport const a = 1`],
      ["src/domain/B.ts", `export { a } from "./A.ts"`],
      ["src/services/S.ts", `import type { X } from "../programs/P.ts"`],
      ["src/programs/P.ts", `import { PgClient } from "@effect/sql-pg/PgClient"\nimport * as L from "../layers/L.ts"`],
      ["src/layers/L.ts", `import { Api } from "telegram"`],
      ["src/main/M.ts", `import "telegram/sessions/index.js"`],
      ["src/bin/B.ts", `import { NodeRuntime } from "@effect/platform-node"\nimport * as R from "@effect/platform-node/NodeRuntime"`]
    ])
    assert.deepStrictEqual([...violations(tree)].sort(), [
      "import cycle: src/domain/A.ts ⇄ src/domain/B.ts",
      "src/bin/B.ts imports the index of @effect/platform-node: import the module it uses",
      "src/main/M.ts imports telegram/sessions/index.js: GramJS stays under src/layers",
      "src/programs/P.ts imports src/layers/L.ts: src/programs may not import src/layers",
      "src/programs/P.ts imports the library client @effect/sql-pg/PgClient: reach it through a service",
      "src/services/S.ts imports src/programs/P.ts: src/services may not import src/programs"
    ])
  })
})
