/**
 * One client TCP connection speaking encrypted MTProto 2.0: transport framing,
 * decryption, the service messages (salts, sessions, acks, pings, containers)
 * and the ordering rules for what the server sends back. What a request
 * means is the host's business (`ConnectionHost.invoke`).
 */
import { randomBytes } from "node:crypto"
import type * as Net from "node:net"
import { Api, extensions } from "telegram"
import { GZIPPacked, MessageContainer } from "telegram/tl/core/index.js"
import { type AuthKey, CryptoError, type MessageEnvelope } from "./Crypto.ts"
import * as Tl from "./Tl.ts"
import { detectTransport, FullTransportCodec, TransportError } from "./Transport.ts"

export interface ConnectionHost {
  readonly authKey: AuthKey
  readonly serverSalt: bigint
  /** Session ids already announced with new_session_created, across connections. */
  readonly knownSessions: Set<bigint>
  /** Called for every message decrypted with the key, before it is handled (the host records the use). */
  used(connection: MtprotoConnection): void
  /** Answers a request with its encoded result or rpc_error; may never settle (a hung method). */
  invoke(request: unknown): Promise<Buffer>
  /** Called for every msgs_ack a client sends, with how many ids it acknowledges. */
  acked(ids: number): void
  log(message: string): void
}

interface Pending {
  readonly body: Buffer
  readonly contentRelated: boolean
  readonly response: boolean
}

/** GramJS declares a container's messages private; this is their shape. */
interface ContainerView {
  readonly messages: ReadonlyArray<{ readonly msgId: { toString(): string }; readonly seqNo: number; readonly obj: unknown }>
}

/** A transport-level error packet: GramJS reads -404 as "auth key unknown". */
const TRANSPORT_AUTH_KEY_UNKNOWN = -404

const randomLong = () => randomBytes(8).readBigInt64LE(0)

export class MtprotoConnection {
  private codec: FullTransportCodec | undefined
  private head = Buffer.alloc(0)
  private sessionId: bigint | undefined
  private lastMsgId = 0n
  private contentSeq = 0
  private outbox: Array<Pending> = []
  private acks: Array<bigint> = []
  private flushScheduled = false
  private disconnectTimer: NodeJS.Timeout | undefined
  private closed = false

  private readonly socket: Net.Socket
  private readonly host: ConnectionHost

  constructor(socket: Net.Socket, host: ConnectionHost) {
    this.socket = socket
    this.host = host
    socket.on("data", (chunk: Buffer) => this.receive(chunk))
    socket.on("close", () => this.markClosed())
    socket.on("error", () => this.markClosed())
  }

  /** Sends an `Updates` object to this client, unless it has no session yet. */
  pushUpdates(updates: Buffer): void {
    if (this.sessionId === undefined || this.closed) return
    this.enqueue({ body: updates, contentRelated: true, response: false })
  }

  close(): void {
    this.socket.destroy()
    this.markClosed()
  }

  private markClosed(): void {
    this.closed = true
    if (this.disconnectTimer !== undefined) clearTimeout(this.disconnectTimer)
  }

  private receive(chunk: Buffer): void {
    try {
      for (const payload of this.framesOf(chunk)) this.handlePacket(payload)
    } catch (error) {
      this.fail(error)
    }
  }

  /** Whatever a client sends, a broken connection is closed and logged, never thrown into the host process. */
  private fail(error: unknown): void {
    const reason = error instanceof Error ? error.message : String(error)
    this.host.log(`closing a connection: ${reason}`)
    this.close()
  }

  private framesOf(chunk: Buffer): Array<Buffer> {
    if (this.codec !== undefined) return this.codec.decode(chunk)
    this.head = Buffer.concat([this.head, chunk])
    if (this.head.length < 8) return []
    if (detectTransport(this.head) === "unsupported") {
      throw new TransportError(
        "only the MTProto TCP Full transport is supported (GramJS ConnectionTCPFull, not obfuscated/abridged/intermediate)"
      )
    }
    this.codec = new FullTransportCodec()
    const buffered = this.head
    this.head = Buffer.alloc(0)
    return this.codec.decode(buffered)
  }

  private handlePacket(payload: Buffer): void {
    if (payload.length >= 8 && payload.readBigInt64LE(0) === 0n) {
      // An unencrypted message is the start of a key exchange, which this server does not do.
      throw new CryptoError("the client has no auth key: give it the simulator's session string")
    }
    let envelope: MessageEnvelope
    try {
      envelope = this.host.authKey.decrypt(payload)
    } catch (error) {
      if (!(error instanceof CryptoError)) throw error
      this.host.log(`rejecting a message: ${error.message}`)
      const code = Buffer.alloc(4)
      code.writeInt32LE(TRANSPORT_AUTH_KEY_UNKNOWN, 0)
      this.writeFrame(code)
      return
    }
    this.host.used(this)
    if (envelope.salt !== this.host.serverSalt) {
      this.sessionId ??= envelope.sessionId
      this.enqueue({
        body: Tl.badServerSalt(envelope.msgId, envelope.seqNo, this.host.serverSalt),
        contentRelated: false,
        response: true
      })
      return
    }
    this.sessionId = envelope.sessionId
    if (!this.host.knownSessions.has(envelope.sessionId)) {
      // GramJS opens a new session on every (re)connect; each is announced once.
      this.host.knownSessions.add(envelope.sessionId)
      this.enqueue({
        body: Tl.newSessionCreated(envelope.msgId, randomLong(), this.host.serverSalt),
        contentRelated: false,
        response: false
      })
    }
    const object = new extensions.BinaryReader(envelope.body).tgReadObject() as unknown
    this.handleObject(envelope.msgId, envelope.seqNo, object).catch((error: unknown) => this.fail(error))
  }

  private async handleObject(msgId: bigint, seqNo: number, pending: unknown): Promise<void> {
    const object = await pending
    if (object instanceof MessageContainer) {
      for (const inner of (object as unknown as ContainerView).messages) {
        await this.handleObject(BigInt(inner.msgId.toString()), inner.seqNo, inner.obj)
      }
      return
    }
    if (object instanceof GZIPPacked) {
      return this.handleObject(msgId, seqNo, new extensions.BinaryReader(object.data).tgReadObject())
    }
    if (seqNo % 2 === 1) this.acks.push(msgId)
    if (object instanceof Api.MsgsAck) {
      this.host.acked(object.msgIds.length)
      return
    }
    if (object instanceof Api.Ping || object instanceof Api.PingDelayDisconnect) {
      if (object instanceof Api.PingDelayDisconnect) this.armDisconnect(object.disconnectDelay)
      const pingId = BigInt(object.pingId.toString())
      this.enqueue({ body: Tl.pong(msgId, pingId), contentRelated: false, response: true })
      return
    }
    if ((object as { classType?: string }).classType !== "request") {
      this.host.log(`ignoring ${(object as { className?: string }).className ?? "an unknown object"} from a client`)
      return
    }
    // Not awaited: a slow or hung method must not hold up the rest of a container.
    void this.host.invoke(object).then((result) => {
      if (!this.closed) this.enqueue({ body: Tl.rpcResult(msgId, result), contentRelated: true, response: true })
    })
  }

  /** ping_delay_disconnect: close the connection if no ping follows within the delay. */
  private armDisconnect(seconds: number): void {
    if (this.disconnectTimer !== undefined) clearTimeout(this.disconnectTimer)
    this.disconnectTimer = setTimeout(() => this.close(), seconds * 1000)
    this.disconnectTimer.unref()
  }

  private enqueue(message: Pending): void {
    this.outbox.push(message)
    if (this.flushScheduled) return
    this.flushScheduled = true
    // Everything answered in the same turn leaves in one container.
    setImmediate(() => this.flush())
  }

  private flush(): void {
    this.flushScheduled = false
    if (this.closed || this.outbox.length === 0) return
    const pending = this.outbox
    this.outbox = []
    if (this.acks.length > 0) {
      pending.push({ body: Tl.msgsAck(this.acks), contentRelated: false, response: false })
      this.acks = []
    }
    const messages = pending.map((m): Tl.OutboundMessage => ({
      msgId: this.nextMsgId(m.response),
      seqNo: this.nextSeqNo(m.contentRelated),
      body: m.body
    }))
    const single = messages.length === 1 ? messages[0] : undefined
    const outer = single ?? {
      msgId: this.nextMsgId(false),
      seqNo: this.nextSeqNo(false),
      body: Tl.msgContainer(messages)
    }
    this.writeFrame(this.host.authKey.encrypt({
      salt: this.host.serverSalt,
      sessionId: this.sessionId ?? 0n,
      msgId: outer.msgId,
      seqNo: outer.seqNo,
      body: outer.body
    }))
  }

  private writeFrame(payload: Buffer): void {
    if (this.codec === undefined || this.closed) return
    this.socket.write(this.codec.encode(payload))
  }

  /**
   * Server msg_ids grow strictly and follow the clock; they are 1 mod 4 for
   * responses and 3 mod 4 for everything else.
   */
  private nextMsgId(response: boolean): bigint {
    const nowMs = BigInt(Date.now())
    const timeBased = ((nowMs / 1000n) << 32n) | (((nowMs % 1000n) << 32n) / 1000n)
    let id = timeBased - (timeBased % 4n) + (response ? 1n : 3n)
    while (id <= this.lastMsgId) id += 4n
    this.lastMsgId = id
    return id
  }

  private nextSeqNo(contentRelated: boolean): number {
    if (!contentRelated) return this.contentSeq * 2
    this.contentSeq += 1
    return this.contentSeq * 2 - 1
  }
}
