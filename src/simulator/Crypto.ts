/**
 * MTProto 2.0 message encryption with a pre-shared auth key
 * (core.telegram.org/mtproto/description). The key exchange is skipped: the
 * client gets the key inside its StringSession.
 */
import { createHash, randomBytes } from "node:crypto"
import { IGE } from "telegram/crypto/IGE.js"

export const AUTH_KEY_BYTES = 256

export class CryptoError extends Error {
  override readonly name = "CryptoError"
}

/** One MTProto message inside an encrypted packet: the envelope fields and its body (TL bytes). */
export interface MessageEnvelope {
  readonly salt: bigint
  readonly sessionId: bigint
  readonly msgId: bigint
  readonly seqNo: number
  readonly body: Buffer
}

const sha256 = (...parts: ReadonlyArray<Buffer>) => {
  const hash = createHash("sha256")
  for (const part of parts) hash.update(part)
  return hash.digest()
}

/** AES-256-IGE key and iv from msg_key; x is 0 client->server, 8 server->client. */
const deriveKeyIv = (authKey: Buffer, msgKey: Buffer, x: 0 | 8) => {
  const a = sha256(msgKey, authKey.subarray(x, x + 36))
  const b = sha256(authKey.subarray(x + 40, x + 76), msgKey)
  return {
    key: Buffer.concat([a.subarray(0, 8), b.subarray(8, 24), a.subarray(24, 32)]),
    iv: Buffer.concat([b.subarray(0, 8), a.subarray(8, 24), b.subarray(24, 32)])
  }
}

export class AuthKey {
  /** auth_key_id: the low 64 bits of SHA-1(auth_key), as sent on the wire. */
  readonly id: Buffer
  readonly key: Buffer

  constructor(key: Buffer) {
    this.key = key
    if (key.length !== AUTH_KEY_BYTES) throw new CryptoError(`an auth key has ${AUTH_KEY_BYTES} bytes, got ${key.length}`)
    this.id = createHash("sha1").update(key).digest().subarray(12, 20)
  }

  static random(): AuthKey {
    return new AuthKey(randomBytes(AUTH_KEY_BYTES))
  }

  decrypt(packet: Buffer): MessageEnvelope {
    if (packet.length < 24 + 32) throw new CryptoError(`an encrypted message of ${packet.length} bytes is too short`)
    if (!packet.subarray(0, 8).equals(this.id)) throw new CryptoError("the message is encrypted with an unknown auth key")
    const msgKey = packet.subarray(8, 24)
    const { iv, key } = deriveKeyIv(this.key, msgKey, 0)
    const plain = Buffer.from(new IGE(key, iv).decryptIge(packet.subarray(24)))
    if (!sha256(this.key.subarray(88, 120), plain).subarray(8, 24).equals(msgKey)) {
      throw new CryptoError("msg_key does not match the decrypted message")
    }
    const length = plain.readInt32LE(28)
    if (length < 0 || 32 + length > plain.length) throw new CryptoError(`message length ${length} overruns the packet`)
    return {
      salt: plain.readBigInt64LE(0),
      sessionId: plain.readBigInt64LE(8),
      msgId: plain.readBigInt64LE(16),
      seqNo: plain.readInt32LE(24),
      body: plain.subarray(32, 32 + length)
    }
  }

  encrypt(envelope: MessageEnvelope): Buffer {
    const header = Buffer.alloc(32)
    header.writeBigInt64LE(envelope.salt, 0)
    header.writeBigInt64LE(envelope.sessionId, 8)
    header.writeBigInt64LE(envelope.msgId, 16)
    header.writeInt32LE(envelope.seqNo, 24)
    header.writeInt32LE(envelope.body.length, 28)
    const unpadded = 32 + envelope.body.length
    // MTProto 2.0 wants 12 to 1024 bytes of padding, ending on a 16-byte boundary.
    const padding = randomBytes(12 + ((16 - ((unpadded + 12) % 16)) % 16))
    const plain = Buffer.concat([header, envelope.body, padding])
    const msgKey = sha256(this.key.subarray(96, 128), plain).subarray(8, 24)
    const { iv, key } = deriveKeyIv(this.key, msgKey, 8)
    return Buffer.concat([this.id, msgKey, Buffer.from(new IGE(key, iv).encryptIge(plain))])
  }
}
