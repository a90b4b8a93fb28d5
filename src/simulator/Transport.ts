/**
 * MTProto's "TCP Full" transport, the one GramJS uses in Node
 * (`ConnectionTCPFull`): every packet is
 * `length:int32LE | seq:int32LE | payload | crc32:uint32LE`, where length
 * counts all four parts. The client's first packet always has seq 0.
 */
import { helpers } from "telegram"

/** Largest packet we accept; real DCs cap requests well below this. */
const MAX_PACKET_BYTES = 16 * 1024 * 1024

export class TransportError extends Error {
  override readonly name = "TransportError"
}

/**
 * What the first bytes of a connection say about its transport. The other
 * MTProto transports start with a marker (0xef abridged, 0xeeeeeeee
 * intermediate, 0xdddddddd padded) or with 64 obfuscated random bytes, which
 * never look like a plausible TCP Full header with seq 0.
 */
export const detectTransport = (head: Buffer): "full" | "unsupported" => {
  if (head[0] === 0xef) return "unsupported"
  const length = head.readInt32LE(0)
  const seq = head.readInt32LE(4)
  const plausible = length >= 12 + 8 && length <= MAX_PACKET_BYTES && length % 4 === 0 && seq === 0
  return plausible ? "full" : "unsupported"
}

/** Splits a byte stream into TCP Full payloads and frames outgoing ones. */
export class FullTransportCodec {
  private buffered: Buffer = Buffer.alloc(0)
  private expectedSeq = 0
  private sendSeq = 0

  /** Feeds received bytes; returns every complete payload, checked. */
  decode(chunk: Buffer): Array<Buffer> {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk])
    const payloads: Array<Buffer> = []
    while (this.buffered.length >= 4) {
      const length = this.buffered.readInt32LE(0)
      if (length < 12 || length > MAX_PACKET_BYTES) {
        throw new TransportError(`TCP Full packet length ${length} is out of range`)
      }
      if (this.buffered.length < length) break
      const packet = this.buffered.subarray(0, length)
      this.buffered = this.buffered.subarray(length)
      const seq = packet.readInt32LE(4)
      const crc = packet.readUInt32LE(length - 4)
      if (helpers.crc32(packet.subarray(0, length - 4)) !== crc) {
        throw new TransportError(`TCP Full packet ${seq} has a bad CRC32`)
      }
      if (seq !== this.expectedSeq) {
        throw new TransportError(`TCP Full packet seq ${seq}, expected ${this.expectedSeq}`)
      }
      this.expectedSeq += 1
      payloads.push(Buffer.from(packet.subarray(8, length - 4)))
    }
    return payloads
  }

  encode(payload: Buffer): Buffer {
    const header = Buffer.alloc(8)
    header.writeInt32LE(payload.length + 12, 0)
    header.writeInt32LE(this.sendSeq, 4)
    this.sendSeq += 1
    const framed = Buffer.concat([header, payload])
    const crc = Buffer.alloc(4)
    crc.writeUInt32LE(helpers.crc32(framed), 0)
    return Buffer.concat([framed, crc])
  }
}
