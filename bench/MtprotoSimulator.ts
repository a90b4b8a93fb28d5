/**
 * The simulator side of `npm run bench:mtproto`, in its own process so its
 * encoding and encryption do not count against the gateway: one channel, and
 * on request posts to it at a rate, `perPush` updates per push (1: each
 * update its own encrypted message; 10 or 100: that many in one container).
 * Each post's text starts with its wall-clock time in ms (performance.timeOrigin
 * + performance.now()), which the gateway's process compares at commit.
 * Talks to its parent over IPC (bench/mtproto.ts).
 */
import { TelegramSimulator } from "../src/simulator/index.ts"

export type SimulatorRequest =
  | { readonly _tag: "Run"; readonly rate: number; readonly seconds: number; readonly perPush: number }
  | { readonly _tag: "Stop" }

export type SimulatorReply =
  | {
    readonly _tag: "Ready"
    readonly port: number
    readonly sessionString: string
    readonly username: string
    /** The channel's newest message id: the next run's posts start after it. */
    readonly lastMessageId: number
  }
  | { readonly _tag: "Done"; readonly firstId: number; readonly lastId: number; readonly seconds: number; readonly acks: number }

const USERNAME = "bench_mtproto"
/** Messages and pts log entries the simulator keeps per channel: enough for any getChannelDifference of a gateway that keeps up. */
const KEEP = 50_000
const padding = "x".repeat(80)

const send = (reply: SimulatorReply) => process.send?.(reply)
const turn = () => new Promise<void>((resolve) => setImmediate(resolve))
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))
const wallClock = () => performance.timeOrigin + performance.now()

const main = async () => {
  const port = Number(process.argv[2] ?? "19200")
  const sim = await TelegramSimulator.startPromise({ port, log: (line) => process.stderr.write(`[simulator] ${line}\n`) })
  const channel = sim.world.addChannel({ username: USERNAME, title: "MTProto bench", kind: "channel" })
  const state = sim.world.channel(channel)

  /** Drops the oldest history beyond KEEP, so a long run does not grow the simulator (it is not what is measured). */
  const trim = () => {
    if (state.log.length > KEEP) state.log.splice(0, state.log.length - KEEP)
    if (state.messages.size > KEEP) {
      const below = state.lastMessageId - KEEP
      for (const id of state.messages.keys()) {
        if (id > below) break
        state.messages.delete(id)
      }
    }
  }

  const run = async (rate: number, seconds: number, perPush: number) => {
    const total = Math.round(rate * seconds)
    const firstId = state.lastMessageId + 1
    const acksBefore = sim.acks.reduce((sum, ack) => sum + ack.ids, 0)
    const started = performance.now()
    let posted = 0
    let lastTrim = started
    while (posted < total) {
      const due = Math.min(total, Math.floor(((performance.now() - started) / 1000) * rate))
      if (due - posted < perPush && due < total) {
        await sleep(1)
        continue
      }
      // One push: `perPush` posts in one turn leave in one container (src/simulator/Connection.ts flushes per turn).
      const count = Math.min(perPush, total - posted)
      for (let i = 0; i < count; i++) sim.world.post(channel, { text: `t=${wallClock().toFixed(3)} ${padding}` })
      posted += count
      await turn()
      if (performance.now() - lastTrim > 1000) {
        trim()
        lastTrim = performance.now()
      }
    }
    const elapsed = (performance.now() - started) / 1000
    send({
      _tag: "Done",
      firstId,
      lastId: state.lastMessageId,
      seconds: elapsed,
      acks: sim.acks.reduce((sum, ack) => sum + ack.ids, 0) - acksBefore
    })
  }

  process.on("message", (request: SimulatorRequest) => {
    if (request._tag === "Stop") {
      void sim.close().then(() => process.exit(0))
      return
    }
    void run(request.rate, request.seconds, request.perPush)
  })
  process.on("disconnect", () => process.exit(0))
  send({ _tag: "Ready", port: sim.port, sessionString: sim.sessionString, username: USERNAME, lastMessageId: state.lastMessageId })
}

main().catch((error: unknown) => {
  process.stderr.write(`[simulator] ${error instanceof Error ? error.stack : String(error)}\n`)
  process.exit(1)
})
