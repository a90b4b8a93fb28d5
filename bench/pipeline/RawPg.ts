/**
 * The smallest PostgreSQL client the raw harness needs (RawHarness.ts): the
 * simple query protocol over one socket, with SCRAM-SHA-256, MD5 or trust
 * authentication (PgBouncer on 6434 asks SCRAM). No pipelining: one query at
 * a time per connection, as a transaction's statements go. No Effect and no
 * driver beyond node:net, so the harness shows what the writes cost by
 * themselves; the project has no plain `pg` package to use instead.
 */
import { createHash, createHmac, pbkdf2Sync, randomBytes } from "node:crypto"
import * as Net from "node:net"

const message = (type: string, body: Buffer) => {
  const header = Buffer.alloc(5)
  header.write(type, 0, "latin1")
  header.writeInt32BE(body.length + 4, 1)
  return Buffer.concat([header, body])
}
const cstring = (text: string) => Buffer.from(`${text}\0`, "utf8")

export class RawPg {
  private buffer: Buffer = Buffer.alloc(0)
  private waiting: Array<{ resolve: () => void; reject: (error: Error) => void }> = []
  private error: Error | undefined
  private onAuth: ((type: number, body: Buffer) => void) | undefined

  private readonly socket: Net.Socket

  private constructor(socket: Net.Socket) {
    this.socket = socket
    socket.setNoDelay(true)
    socket.on("data", (chunk) => this.receive(chunk))
    socket.on("error", (cause) => this.fail(cause))
    socket.on("close", () => this.fail(new Error("connection closed")))
  }

  static connect(url: string): Promise<RawPg> {
    const parsed = new URL(url)
    const user = decodeURIComponent(parsed.username)
    const password = decodeURIComponent(parsed.password)
    const database = parsed.pathname.slice(1)
    return new Promise((resolve, reject) => {
      const socket = Net.connect(Number(parsed.port || 5432), parsed.hostname)
      const client = new RawPg(socket)
      const clientNonce = randomBytes(18).toString("base64")
      const clientFirstBare = `n=,r=${clientNonce}`
      let serverSignature = ""
      client.onAuth = (type, body) => {
        if (type === 0) return
        if (type === 3) return void socket.write(message("p", cstring(password)))
        if (type === 5) {
          const inner = createHash("md5").update(password + user).digest("hex")
          const outer = createHash("md5").update(Buffer.concat([Buffer.from(inner), body.subarray(4, 8)])).digest("hex")
          return void socket.write(message("p", cstring(`md5${outer}`)))
        }
        if (type === 10) {
          const first = Buffer.from(`n,,${clientFirstBare}`)
          const length = Buffer.alloc(4)
          length.writeInt32BE(first.length)
          return void socket.write(message("p", Buffer.concat([cstring("SCRAM-SHA-256"), length, first])))
        }
        if (type === 11) {
          const serverFirst = body.subarray(4).toString()
          const fields = Object.fromEntries(serverFirst.split(",").map((field) => [field[0], field.slice(2)]))
          const salted = pbkdf2Sync(password, Buffer.from(fields.s!, "base64"), Number(fields.i), 32, "sha256")
          const clientKey = createHmac("sha256", salted).update("Client Key").digest()
          const storedKey = createHash("sha256").update(clientKey).digest()
          const withoutProof = `c=biws,r=${fields.r}`
          const authMessage = `${clientFirstBare},${serverFirst},${withoutProof}`
          const signature = createHmac("sha256", storedKey).update(authMessage).digest()
          const proof = clientKey.map((byte, index) => byte ^ signature[index]!)
          const serverKey = createHmac("sha256", salted).update("Server Key").digest()
          serverSignature = createHmac("sha256", serverKey).update(authMessage).digest("base64")
          return void socket.write(message("p", Buffer.from(`${withoutProof},p=${Buffer.from(proof).toString("base64")}`)))
        }
        if (type === 12) {
          if (body.subarray(4).toString() !== `v=${serverSignature}`) client.fail(new Error("SCRAM: wrong server signature"))
          return
        }
        client.fail(new Error(`unsupported authentication request ${type}`))
      }
      client.waiting.push({ resolve: () => resolve(client), reject })
      socket.once("connect", () => {
        const params = Buffer.concat([cstring("user"), cstring(user), cstring("database"), cstring(database), Buffer.from([0])])
        const body = Buffer.alloc(4 + params.length)
        body.writeInt32BE(196608)
        params.copy(body, 4)
        const length = Buffer.alloc(4)
        length.writeInt32BE(body.length + 4)
        socket.write(Buffer.concat([length, body]))
      })
    })
  }

  /** Runs `sql` (one statement or several) and resolves at ReadyForQuery; rejects with the server's error. */
  query(sql: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject })
      this.socket.write(message("Q", cstring(sql)))
    })
  }

  close(): void {
    this.socket.end(message("X", Buffer.alloc(0)))
  }

  private fail(cause: Error): void {
    for (const waiter of this.waiting.splice(0)) waiter.reject(cause)
  }

  private receive(chunk: Buffer): void {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk])
    while (this.buffer.length >= 5) {
      const length = this.buffer.readInt32BE(1)
      if (this.buffer.length < length + 1) return
      const type = String.fromCharCode(this.buffer[0]!)
      const body = this.buffer.subarray(5, length + 1)
      this.buffer = this.buffer.subarray(length + 1)
      if (type === "R") this.onAuth?.(body.readInt32BE(0), body)
      else if (type === "E") {
        const fields = body.toString().split("\0")
        this.error = new Error(fields.find((field) => field.startsWith("M"))?.slice(1) ?? "PostgreSQL error")
      } else if (type === "Z") {
        const waiter = this.waiting.shift()
        const error = this.error
        this.error = undefined
        if (error === undefined) waiter?.resolve()
        else waiter?.reject(error)
      }
    }
  }
}
