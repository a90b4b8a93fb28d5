/**
 * `telegram-gateway run` as a real child process, for tests that kill it,
 * freeze it or restart it while the Telegram simulator (in the test process)
 * and the tiers outlive it. Scoped: a process still running when the scope
 * closes is SIGKILLed, and the scope waits for its exit.
 *
 *   const gateway = yield* startGatewayProcess({ env: gatewayEnv({ ... }) })
 *   yield* gateway.waitForLog(/connected to Telegram/)
 *   gateway.kill("SIGKILL"); yield* gateway.exited
 */
import { Duration, Effect } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import { createServer } from "node:net"
import { fileURLToPath } from "node:url"

const bin = fileURLToPath(new URL("../../src/bin/telegram-gateway.ts", import.meta.url))

export interface GatewayProcess {
  readonly pid: number
  readonly httpPort: number
  /** Everything the process wrote to stdout and stderr so far. */
  readonly output: () => string
  /** JSON log lines parsed so far (lines that are not JSON are skipped). */
  readonly logs: () => ReadonlyArray<Record<string, unknown>>
  readonly kill: (signal: NodeJS.Signals) => void
  /** Resolves with the exit code (null when ended by a signal). */
  readonly exited: Effect.Effect<number | null>
  /** Waits until the output matches, failing with the output after `timeout`. */
  readonly waitForLog: (pattern: RegExp, timeout?: Duration.Input) => Effect.Effect<void>
  /** GET on the daemon's health/metrics endpoint; undefined while it does not answer. */
  readonly get: (path: string) => Effect.Effect<{ readonly status: number; readonly body: string } | undefined>
  /** The value of one Prometheus sample, e.g. `tier_up{tier="postgres"}`; undefined when absent. */
  readonly metric: (sample: string) => Effect.Effect<number | undefined>
}

/** The environment that logs a gateway into `simulator` with `sessionFile` and has it listen to `channels` ("@a,@b"). */
export const simulatorEnv = (
  simulator: { readonly dcId: number; readonly host: string; readonly port: number },
  sessionFile: string,
  channels: string
): Record<string, string> => ({
  TELEGRAM_API_ID: "1",
  TELEGRAM_API_HASH: "simulator",
  TELEGRAM_SESSION_FILE: sessionFile,
  TELEGRAM_CHANNELS: channels,
  TELEGRAM_DC_ID: String(simulator.dcId),
  TELEGRAM_DC_ADDRESS: simulator.host,
  TELEGRAM_DC_PORT: String(simulator.port)
})

/** A free TCP port on 127.0.0.1, as the kernel hands it out. */
export const freePort = Effect.promise(() =>
  new Promise<number>((resolve, reject) => {
    const server = createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      server.close(() => resolve(typeof address === "object" && address !== null ? address.port : 0))
    })
  })
)

export interface GatewayProcessOptions {
  /** Configuration as environment variables (constant case, as the daemon reads them). */
  readonly env: Record<string, string>
  readonly command?: ReadonlyArray<string>
  /** A built program (deploy/scripts/bundle.mjs: the daemon or the API) run with plain node, as deployed; by default the daemon's source through tsx. */
  readonly program?: string
}

export const startGatewayProcess = (options: GatewayProcessOptions) =>
  Effect.gen(function*() {
    const httpPort = Number(options.env.HTTP_PORT ?? (yield* freePort))
    const child: ChildProcess = yield* Effect.acquireRelease(
      Effect.sync(() =>
        spawn(process.execPath, [
          ...(options.program === undefined ? ["--import", "tsx", bin] : [options.program]),
          ...(options.command ?? ["run"])
        ], {
          env: { ...process.env, LOG_LEVEL: "Info", ...options.env, HTTP_PORT: String(httpPort) },
          stdio: ["ignore", "pipe", "pipe"]
        })
      ),
      // Waits for the exit, so nothing the process still had in flight lands after the test's cleanup.
      (child) =>
        Effect.callback<void>((resume) => {
          if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
          child.once("exit", () => resume(Effect.void))
          child.kill("SIGKILL")
        }).pipe(Effect.timeoutOption("10 seconds"))
    )
    let output = ""
    const parsed: Array<Record<string, unknown>> = []
    let partial = ""
    const onData = (chunk: Buffer) => {
      const text = chunk.toString()
      output += text
      partial += text
      const lines = partial.split("\n")
      partial = lines.pop() ?? ""
      for (const line of lines) {
        const start = line.indexOf("{")
        if (start < 0) continue
        try {
          parsed.push(JSON.parse(line.slice(start)) as Record<string, unknown>)
        } catch {
          // not a JSON log line
        }
      }
    }
    child.stdout!.on("data", onData)
    child.stderr!.on("data", onData)
    const exitPromise = new Promise<number | null>((resolve) => {
      if (child.exitCode !== null) resolve(child.exitCode)
      else child.on("exit", (code) => resolve(code))
    })

    const get = (path: string) =>
      Effect.promise(() =>
        fetch(`http://127.0.0.1:${httpPort}${path}`, { signal: AbortSignal.timeout(3_000) }).then(
          async (response) => ({ status: response.status, body: await response.text() }),
          () => undefined
        )
      )

    const waitForLog = (pattern: RegExp, timeout: Duration.Input = "30 seconds") =>
      Effect.gen(function*() {
        while (!pattern.test(output)) yield* Effect.sleep("50 millis")
      }).pipe(
        Effect.timeoutOrElse({
          duration: timeout,
          orElse: () => Effect.die(new Error(`gateway never logged ${pattern}; its output:\n${output}`))
        })
      )

    const metric = (sample: string) =>
      get("/metrics").pipe(Effect.map((response) => {
        if (response === undefined) return undefined
        const line = response.body.split("\n").find((candidate) => candidate.startsWith(`${sample} `))
        return line === undefined ? undefined : Number(line.slice(sample.length + 1))
      }))

    return {
      pid: child.pid!,
      httpPort,
      output: () => output,
      logs: () => parsed,
      kill: (signal) => void child.kill(signal),
      exited: Effect.promise(() => exitPromise),
      waitForLog,
      get,
      metric
    } satisfies GatewayProcess
  })

/**
 * Runs a command to its end: its exit code and output. A process still
 * running after `timeout` is SIGKILLed and the test fails with its output.
 */
export const runToExit = (options: GatewayProcessOptions & { readonly timeout: Duration.Input }) =>
  Effect.scoped(Effect.gen(function*() {
    const gateway = yield* startGatewayProcess(options)
    const code = yield* gateway.exited.pipe(
      Effect.timeoutOrElse({
        duration: options.timeout,
        orElse: () => Effect.die(new Error(`${(options.command ?? ["run"]).join(" ")} did not exit; its output:\n${gateway.output()}`))
      })
    )
    return { code, output: gateway.output() }
  }))
