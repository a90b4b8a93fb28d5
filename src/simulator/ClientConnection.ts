/**
 * GramJS dials port 80 whatever the session says (TELEGRAM.md), so a client
 * of the simulator needs a connection class that pins the port. Reconnects
 * reuse the class, so they reach the same server.
 */
// GramJS's modules import each other in a cycle that only resolves when the package root loads first.
import "telegram"
import { ConnectionTCPFull } from "telegram/network/connection/TCPFull.js"

type ConnectionParams = ConstructorParameters<typeof ConnectionTCPFull>[0]

/** `new TelegramClient(session, apiId, apiHash, { connection: connectionToPort(sim.port) })` */
export const connectionToPort = (port: number): typeof ConnectionTCPFull =>
  class PinnedPortConnection extends ConnectionTCPFull {
    constructor(params: ConnectionParams) {
      super({ ...params, port })
    }
  }
