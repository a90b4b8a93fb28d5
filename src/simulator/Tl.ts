/**
 * The TL pieces GramJS's `Api` classes do not write for a server: Vector,
 * Bool, rpc_result, rpc_error, gzip_packed, msg_container, msgs_ack and the
 * service answers (pong, bad_server_salt, new_session_created). Everything
 * else is `Api.X#getBytes()`.
 */
import { gzipSync } from "node:zlib"
import { Api } from "telegram"

const constructorBytes = (id: number) => {
  const out = Buffer.alloc(4)
  out.writeUInt32LE(id >>> 0, 0)
  return out
}
const int32 = (value: number) => {
  const out = Buffer.alloc(4)
  out.writeInt32LE(value, 0)
  return out
}
const int64 = (value: bigint) => {
  const out = Buffer.alloc(8)
  out.writeBigInt64LE(value, 0)
  return out
}

/** TL `bytes`/`string`: a length prefix (1 or 4 bytes), the data, zero padding to 4. */
const tlBytes = (data: Buffer): Buffer => {
  const header = data.length < 254
    ? Buffer.from([data.length])
    : Buffer.from([254, data.length & 0xff, (data.length >> 8) & 0xff, (data.length >> 16) & 0xff])
  const padding = (4 - ((header.length + data.length) % 4)) % 4
  return Buffer.concat([header, data, Buffer.alloc(padding)])
}

const ID = {
  vector: 0x1cb5c415,
  boolTrue: 0x997275b5,
  boolFalse: 0xbc799737,
  rpcResult: 0xf35c6d01,
  rpcError: 0x2144ca19,
  gzipPacked: 0x3072cfa1,
  msgContainer: 0x73f1f8dc,
  msgsAck: 0x62d6b459,
  pong: 0x347773c5,
  badServerSalt: 0xedab447b,
  newSessionCreated: 0x9ec20908
} as const

/** A value a method returns: an `Api` object, a Vector of them, or a Bool. */
export type TlValue = { getBytes(): Buffer } | boolean | Buffer | ReadonlyArray<TlValue>

export const encodeValue = (value: TlValue): Buffer => {
  if (Buffer.isBuffer(value)) return value
  if (typeof value === "boolean") return constructorBytes(value ? ID.boolTrue : ID.boolFalse)
  if (Array.isArray(value)) {
    const items = value as ReadonlyArray<TlValue>
    return Buffer.concat([constructorBytes(ID.vector), int32(items.length), ...items.map(encodeValue)])
  }
  return (value as { getBytes(): Buffer }).getBytes()
}

export const rpcError = (code: number, message: string): Buffer =>
  new Api.RpcError({ errorCode: code, errorMessage: message }).getBytes()

/** Results this large travel gzipped, as a real DC does. */
const GZIP_THRESHOLD_BYTES = 512

const gzipPacked = (body: Buffer): Buffer =>
  Buffer.concat([constructorBytes(ID.gzipPacked), tlBytes(gzipSync(body))])

export const rpcResult = (reqMsgId: bigint, result: Buffer): Buffer => {
  const gzipped = result.length > GZIP_THRESHOLD_BYTES ? gzipPacked(result) : undefined
  const body = gzipped !== undefined && gzipped.length < result.length ? gzipped : result
  return Buffer.concat([constructorBytes(ID.rpcResult), int64(reqMsgId), body])
}

export interface OutboundMessage {
  readonly msgId: bigint
  readonly seqNo: number
  readonly body: Buffer
}

export const msgContainer = (messages: ReadonlyArray<OutboundMessage>): Buffer =>
  Buffer.concat([
    constructorBytes(ID.msgContainer),
    int32(messages.length),
    ...messages.flatMap((m) => [int64(m.msgId), int32(m.seqNo), int32(m.body.length), m.body])
  ])

export const msgsAck = (msgIds: ReadonlyArray<bigint>): Buffer =>
  Buffer.concat([constructorBytes(ID.msgsAck), constructorBytes(ID.vector), int32(msgIds.length), ...msgIds.map(int64)])

export const pong = (msgId: bigint, pingId: bigint): Buffer =>
  Buffer.concat([constructorBytes(ID.pong), int64(msgId), int64(pingId)])

/** error_code 48: "incorrect server salt"; the client resends with the new one. */
export const badServerSalt = (badMsgId: bigint, badSeqNo: number, newSalt: bigint): Buffer =>
  Buffer.concat([constructorBytes(ID.badServerSalt), int64(badMsgId), int32(badSeqNo), int32(48), int64(newSalt)])

export const newSessionCreated = (firstMsgId: bigint, uniqueId: bigint, salt: bigint): Buffer =>
  Buffer.concat([constructorBytes(ID.newSessionCreated), int64(firstMsgId), int64(uniqueId), int64(salt)])
