/**
 * The runtime settings the systemd unit (deploy/systemd/telegram-gateway.service)
 * starts the daemon with, so the bench's gateway process runs as deployed:
 * the unit's `Environment=NODE_OPTIONS=` (V8's young generation) and
 * `Environment=MALLOC_ARENA_MAX=` (glibc's arenas), and the flags its
 * `ExecStart=` gives node before the script (V8's heap growing, which Node
 * refuses in NODE_OPTIONS).
 *
 * `--max-old-space-size` is left out of NODE_OPTIONS unless `heapCap` is set:
 * issue 14's memory goal for the daemon is measured with the heap not capped.
 * The unit keeps that cap as the backstop below its cgroup limit (MemoryMax=)
 * for a full write queue during an outage, where no steady rate takes the heap
 * near it. The API's bench (bench/api.ts) measures latency, so its server
 * keeps its unit's cap, as deployed.
 */
import * as Fs from "node:fs"

const keys = ["NODE_OPTIONS", "MALLOC_ARENA_MAX"] as const

export const deployedEnvironment = (unitFile: string, options: { readonly heapCap: boolean } = { heapCap: false }): Record<string, string> => {
  const environment: Record<string, string> = {}
  for (const line of Fs.readFileSync(unitFile, "utf8").split("\n")) {
    // `Environment="NAME=a b"`: quoted when the value holds spaces.
    const match = /^Environment="?([A-Z_]+)=(.*?)"?$/.exec(line)
    if (match === null || !keys.includes(match[1] as (typeof keys)[number])) continue
    environment[match[1]!] = match[1] === "NODE_OPTIONS" && !options.heapCap
      ? match[2]!.split(/\s+/).filter((flag) => !flag.startsWith("--max-old-space-size")).join(" ")
      : match[2]!
  }
  return environment
}

/** The flags of the unit's `ExecStart=` between the node binary and the script. */
export const deployedNodeFlags = (unitFile: string): Array<string> => {
  const execStart = Fs.readFileSync(unitFile, "utf8").split("\n").find((line) => line.startsWith("ExecStart="))
  if (execStart === undefined) throw new Error(`${unitFile} has no ExecStart=`)
  const [, ...words] = execStart.slice("ExecStart=".length).trim().split(/\s+/)
  const flags: Array<string> = []
  for (const word of words) {
    if (!word.startsWith("--")) break
    flags.push(word)
  }
  return flags
}
