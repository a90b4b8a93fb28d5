import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Net from "node:net"
import { makeTcpProxy } from "./TcpProxy.ts"

const echoServer = Effect.acquireRelease(
  Effect.callback<Net.Server>((resume) => {
    const server = Net.createServer((socket) => socket.pipe(socket))
    server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
  }),
  (server) => Effect.callback<void>((resume) => void server.close(() => resume(Effect.void)))
)

const portOf = (server: Net.Server) => (server.address() as Net.AddressInfo).port

/** One round trip through the proxy: what came back, or the connection's error code. */
const roundTrip = (port: number) =>
  Effect.callback<string>((resume) => {
    const socket = Net.connect(port, "127.0.0.1", () => socket.write("ping"))
    socket.once("data", (data) => {
      socket.destroy()
      resume(Effect.succeed(data.toString()))
    })
    socket.once("error", (error: NodeJS.ErrnoException) => resume(Effect.succeed(error.code ?? error.message)))
  })

const occupy = (port: number) =>
  Effect.callback<Net.Server>((resume) => {
    const squatter = Net.createServer()
    squatter.listen(port, "127.0.0.1", () => resume(Effect.succeed(squatter)))
  })

describe("TcpProxy", () => {
  it.effect("restore waits for its port when another socket took it while cut, on the real clock even under a TestClock", () =>
    Effect.gen(function*() {
      const target = yield* echoServer
      const proxy = yield* makeTcpProxy({ host: "127.0.0.1", port: portOf(target) })
      assert.strictEqual(yield* roundTrip(proxy.port), "ping")
      yield* proxy.cut
      assert.strictEqual(yield* roundTrip(proxy.port), "ECONNREFUSED")
      const squatter = yield* occupy(proxy.port)
      setTimeout(() => squatter.close(), 300)
      yield* proxy.restore
      assert.strictEqual(yield* roundTrip(proxy.port), "ping")
    }).pipe(Effect.scoped))
})
