/**
 * A TCP proxy in front of a real service, so a test can make the service
 * unreachable (connections reset, new ones refused, as with a stopped server)
 * and bring it back, without stopping the machine's shared service.
 */
import { Effect } from "effect"
import * as Net from "node:net"

export interface TcpProxy {
  readonly port: number
  /** Drops every open connection and refuses new ones. */
  readonly cut: Effect.Effect<void>
  /** Listens again on the same port. */
  readonly restore: Effect.Effect<void>
  /**
   * Stops delivering bytes either way and holds new connections, as when the
   * route drops packets: nothing errors, bytes wait (as retransmissions would)
   * and arrive after `heal`, unless a side gives up and closes first.
   */
  readonly blackhole: Effect.Effect<void>
  readonly heal: Effect.Effect<void>
}

const listen = (server: Net.Server, port: number) =>
  Effect.callback<number>((resume) => {
    server.listen(port, "127.0.0.1", () => resume(Effect.succeed((server.address() as Net.AddressInfo).port)))
  })

/**
 * The proxy's port is an ephemeral one, so while it is cut an outgoing
 * connection may be given it: listening again waits (on the real clock, also
 * under a TestClock) for the port to be free, and names it if it never is.
 */
const relisten = (makeServer: () => Net.Server, port: number) =>
  Effect.callback<void>((resume) => {
    const deadline = Date.now() + 15_000
    const attempt = () => {
      const server = makeServer()
      server.once("error", (error: NodeJS.ErrnoException) => {
        if (error.code === "EADDRINUSE" && Date.now() < deadline) setTimeout(attempt, 100)
        else resume(Effect.die(new Error(`TcpProxy could not listen on 127.0.0.1:${port} again: ${error.message}`)))
      })
      server.listen(port, "127.0.0.1", () => resume(Effect.void))
    }
    attempt()
  })

/** Scoped: the proxy closes when the test's scope does. */
export const makeTcpProxy = (target: { readonly host: string; readonly port: number }) =>
  Effect.gen(function*() {
    const sockets = new Set<Net.Socket>()
    let holed = false
    /** Connections accepted during a blackhole, connected upstream on heal. */
    const held: Array<() => void> = []
    const forward = (client: Net.Socket) => {
      const upstream = Net.connect(target.port, target.host)
      sockets.add(upstream)
      client.pipe(upstream)
      upstream.pipe(client)
      if (holed) upstream.pause()
      const close = () => {
        client.destroy()
        upstream.destroy()
        sockets.delete(client)
        sockets.delete(upstream)
      }
      client.on("error", close).on("close", close)
      upstream.on("error", close).on("close", close)
    }
    const makeServer = () =>
      Net.createServer((client) => {
        sockets.add(client)
        if (holed) {
          client.pause()
          const onClose = () => sockets.delete(client)
          client.on("error", onClose).on("close", onClose)
          held.push(() => {
            client.off("close", onClose)
            if (!client.destroyed) forward(client)
          })
        } else {
          forward(client)
        }
      })
    let server = makeServer()
    const port = yield* listen(server, 0)
    const cut = Effect.callback<void>((resume) => {
      for (const socket of sockets) socket.destroy()
      sockets.clear()
      server.close(() => resume(Effect.void))
    })
    const restore = relisten(() => (server = makeServer()), port)
    const blackhole = Effect.sync(() => {
      holed = true
      for (const socket of sockets) socket.pause()
    })
    const heal = Effect.sync(() => {
      holed = false
      for (const socket of sockets) socket.resume()
      for (const connect of held.splice(0)) connect()
    })
    yield* Effect.addFinalizer(() => cut)
    return { port, cut, restore, blackhole, heal } satisfies TcpProxy
  })
