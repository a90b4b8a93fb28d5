/**
 * The simulator's TCP server: accepts GramJS connections, answers their
 * requests from the World (through the Faults), and pushes the World's
 * updates to every connected client.
 */
import { randomBytes } from "node:crypto"
import * as Net from "node:net"
import { Account } from "./Account.ts"
import { MtprotoConnection } from "./Connection.ts"
import { AuthKey } from "./Crypto.ts"
import { Faults } from "./Faults.ts"
import { type DifferenceSettings, handleRequest, type HandlerContext, methodName, RpcFailure, unwrapRequest } from "./Handlers.ts"
import * as Tl from "./Tl.ts"
import { World } from "./World.ts"

export interface SimulatorOptions {
  /** 0 (the default) picks a free port. */
  readonly port?: number
  readonly host?: string
  readonly dcId?: number
  /** false makes the session start signed out, for a login flow (code "12345"). */
  readonly authorized?: boolean
  /** A two-step-verification password the login flow must pass (checked with SRP). */
  readonly password?: string
  /** getChannelDifference answers channelDifferenceTooLong when the client is further behind than this. */
  readonly differenceTooLongAfter?: number
  /** The `timeout` (seconds) getChannelDifference answers carry; `settings` changes it later. */
  readonly differenceTimeout?: number
  /** Where protocol warnings go (rejected transports, unknown methods); defaults to stderr. */
  readonly log?: (line: string) => void
}

/**
 * One TCP connection, from accept to close, and when it used the key (any
 * message the server could decrypt, pings included).
 */
export interface ConnectionRecord {
  readonly id: number
  readonly openedAt: number
  closedAt: number | undefined
  firstUseAt: number | undefined
  lastUseAt: number | undefined
}

/** One msgs_ack a client sent: when, and how many message ids it acknowledged. */
export interface AckRecord {
  readonly at: number
  readonly ids: number
}

/** One call a client made, innermost method name first. */
export interface CallRecord {
  readonly method: string
  readonly at: number
}

export class SimulatorServer {
  readonly world: World
  readonly faults: Faults
  readonly calls: Array<CallRecord> = []
  readonly acks: Array<AckRecord> = []
  /** Every connection ever accepted, in order. */
  readonly connectionLog: Array<ConnectionRecord> = []
  private readonly records = new Map<MtprotoConnection, ConnectionRecord>()
  readonly authKey = AuthKey.random()
  readonly account: Account
  private readonly connections = new Set<MtprotoConnection>()
  /** How many TCP connections were ever accepted (reconnects show up here). */
  connectionsAccepted = 0
  private readonly knownSessions = new Set<bigint>()
  private readonly serverSalt = randomBytes(8).readBigInt64LE(0)
  private readonly handlerContext: HandlerContext
  get settings(): DifferenceSettings {
    return this.handlerContext.settings
  }
  private readonly unsubscribe: () => void

  readonly host: string
  readonly port: number
  readonly dcId: number
  private readonly server: Net.Server
  private readonly log: (line: string) => void

  private constructor(
    server: Net.Server,
    host: string,
    port: number,
    dcId: number,
    options: SimulatorOptions,
    log: (line: string) => void
  ) {
    this.server = server
    this.host = host
    this.port = port
    this.dcId = dcId
    this.log = log
    this.world = new World({ phone: "15550000001", firstName: "Simulated", username: "sim_self" })
    this.account = new Account(options.authorized ?? true, options.password)
    this.faults = new Faults(() => this.dropConnections())
    this.handlerContext = {
      world: this.world,
      account: this.account,
      dcId,
      host,
      port,
      settings: {
        differenceTooLongAfter: options.differenceTooLongAfter ?? 1000,
        differenceTimeout: options.differenceTimeout ?? 30
      }
    }
    this.unsubscribe = this.world.subscribe((updates) => {
      const bytes = updates.getBytes()
      this.faults.routePush(() => {
        for (const connection of this.connections) connection.pushUpdates(bytes)
      })
    })
    server.on("connection", (socket) => this.accept(socket))
  }

  static start(options: SimulatorOptions = {}): Promise<SimulatorServer> {
    const host = options.host ?? "127.0.0.1"
    const log = options.log ?? ((line: string) => process.stderr.write(`[telegram-simulator] ${line}\n`))
    const server = Net.createServer()
    return new Promise((resolve, reject) => {
      server.once("error", reject)
      server.listen(options.port ?? 0, host, () => {
        server.off("error", reject)
        const port = (server.address() as Net.AddressInfo).port
        resolve(new SimulatorServer(server, host, port, options.dcId ?? 2, options, log))
      })
    })
  }

  /**
   * A GramJS StringSession for this server: "1" + base64(dcId | addrLen | addr | port | authKey).
   * The port field is a signed int16 (GramJS writes it so), hence the wrap above 32767;
   * GramJS ignores it anyway and dials the port its connection class gives.
   */
  get sessionString(): string {
    const address = Buffer.from(this.host)
    const header = Buffer.alloc(3)
    header.writeUInt8(this.dcId, 0)
    header.writeInt16BE(address.length, 1)
    const port = Buffer.alloc(2)
    port.writeInt16BE(this.port > 0x7fff ? this.port - 0x10000 : this.port, 0)
    return `1${Buffer.concat([header, address, port, this.authKey.key]).toString("base64")}`
  }

  dropConnections(): void {
    for (const connection of this.connections) connection.close()
    this.connections.clear()
  }

  close(): Promise<void> {
    this.unsubscribe()
    this.dropConnections()
    return new Promise((resolve) => this.server.close(() => resolve()))
  }

  private accept(socket: Net.Socket): void {
    socket.setNoDelay(true)
    const connection = new MtprotoConnection(socket, {
      authKey: this.authKey,
      serverSalt: this.serverSalt,
      knownSessions: this.knownSessions,
      used: (user) => this.used(user),
      invoke: (request) => this.invoke(request),
      acked: (ids) => void this.acks.push({ at: Date.now(), ids }),
      log: this.log
    })
    this.connections.add(connection)
    this.connectionsAccepted += 1
    const record: ConnectionRecord = {
      id: this.connectionsAccepted,
      openedAt: Date.now(),
      closedAt: undefined,
      firstUseAt: undefined,
      lastUseAt: undefined
    }
    this.connectionLog.push(record)
    this.records.set(connection, record)
    socket.on("close", () => {
      this.connections.delete(connection)
      this.records.delete(connection)
      record.closedAt = Date.now()
    })
  }

  /**
   * As Telegram does, a key used from two connections at once is revoked:
   * when a connection uses the key while another open connection has used it
   * since this one opened, every later call fails with 406
   * AUTH_KEY_DUPLICATED. A connection that went silent (its process frozen)
   * before the other opened does not count until it speaks again.
   */
  private used(connection: MtprotoConnection): void {
    const record = this.records.get(connection)
    if (record === undefined) return
    const now = Date.now()
    record.firstUseAt ??= now
    record.lastUseAt = now
    for (const [other, otherRecord] of this.records) {
      if (other === connection || otherRecord.lastUseAt === undefined) continue
      if (otherRecord.lastUseAt >= record.openedAt && record.lastUseAt >= otherRecord.openedAt) {
        this.log(`connections ${otherRecord.id} and ${record.id} used the same auth key at once: AUTH_KEY_DUPLICATED`)
        this.faults.fatal("AUTH_KEY_DUPLICATED")
        return
      }
    }
  }

  private async invoke(wrapped: unknown): Promise<Buffer> {
    const request = unwrapRequest(wrapped)
    const method = methodName(request)
    this.calls.push({ method, at: Date.now() })
    const decision = this.faults.decide(method)
    if (decision._tag === "Hang") return new Promise<Buffer>(() => {})
    if (decision._tag === "Fail") return Tl.rpcError(decision.code, decision.message)
    if (decision.delayMs > 0) await new Promise((resolve) => setTimeout(resolve, decision.delayMs))
    try {
      return Tl.encodeValue(await handleRequest(this.handlerContext, request))
    } catch (error) {
      if (error instanceof RpcFailure) {
        if (error.errorMessage === "METHOD_INVALID") this.log(`unsupported method ${method}: answered 400 METHOD_INVALID`)
        return Tl.rpcError(error.code, error.errorMessage)
      }
      this.log(`${method} failed inside the simulator: ${String(error)}`)
      return Tl.rpcError(500, "INTERNAL_SERVER_ERROR")
    }
  }
}
