/**
 * One socket write per pass of amqplib's multiplexer instead of one per frame.
 *
 * amqplib queues each publish (its method, header and body frames, one
 * buffer for a small message) on the channel's stream; its multiplexer
 * (amqplib/lib/mux.js) then moves what is queued to the socket, a
 * `socket.write` per buffer, and with `noDelay` each write is a system call
 * and a TCP segment. A hot-path batch of 200 publishes was 200 writes: in a
 * `--cpu-prof` of the gateway at 5,000 msg/s, 11-14% of its busy time
 * (docs/benchmarks.md, "Pipeline, 2026-12-02"). Corking the socket around
 * the multiplexer's pass hands everything the pass moved to the kernel in one
 * `writev` when the pass ends, in the same turn of the event loop: nothing
 * waits longer, and the frames keep their order. The socket's
 * back-pressure is unchanged (the multiplexer still stops when a write
 * reports the socket full, and resumes on `drain`).
 *
 * amqplib exposes no hook for this, so it wraps the multiplexer's
 * `_readIncoming` (amqplib 2.3, package-lock.json); when that is not there
 * (another amqplib), nothing changes and the publishes go out as before.
 */
import type * as Amqp from "amqplib"
import { Socket } from "node:net"

interface AmqplibInternals {
  readonly connection?: {
    readonly stream?: unknown
    readonly muxer?: { _readIncoming?: () => void }
  }
}

/** Coalesces `model`'s writes per multiplexer pass; false when amqplib's internals are not as expected. */
export const coalesceWrites = (model: Amqp.ChannelModel): boolean => {
  const connection = (model as unknown as AmqplibInternals).connection
  const socket = connection?.stream
  const muxer = connection?.muxer
  if (!(socket instanceof Socket) || muxer === undefined || typeof muxer._readIncoming !== "function") return false
  const pass = muxer._readIncoming
  muxer._readIncoming = function(this: unknown) {
    socket.cork()
    try {
      pass.call(this)
    } finally {
      socket.uncork()
    }
  }
  return true
}
