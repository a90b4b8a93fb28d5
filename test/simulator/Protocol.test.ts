/**
 * The MTProto rules a real DC follows, checked with GramJS's own client-side
 * state (encryption, msg_ids) over a raw socket, below what TelegramClient shows.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Net from "node:net"
import { Api, helpers, Logger } from "telegram"
import { AuthKey } from "telegram/crypto/AuthKey.js"
import { BinaryReader } from "telegram/extensions/BinaryReader.js"
import { BinaryWriter } from "telegram/extensions/BinaryWriter.js"
import { LogLevel } from "telegram/extensions/Logger.js"
import { FullPacketCodec } from "telegram/network/connection/TCPFull.js"
import { MTProtoState } from "telegram/network/MTProtoState.js"
import { RPCResult } from "telegram/tl/core/index.js"
import { type TelegramSimulator as Simulator, TelegramSimulator } from "../../src/simulator/index.ts"
import { promise } from "./SimulatorClient.ts"

interface Received {
  readonly msgId: bigint
  readonly obj: unknown
  readonly wireBytes: number
}

/** GramJS declares these fields private. */
interface RpcResultView {
  readonly reqMsgId: { toString(): string }
  readonly body: Buffer
}

interface ContainerView {
  readonly messages: ReadonlyArray<{ readonly msgId: { toString(): string }; readonly obj: unknown }>
}

/** A bare MTProto client: GramJS's MTProtoState on a socket, one request at a time. */
const rawClient = (sim: Simulator) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const key = Buffer.from(sim.sessionString.slice(1), "base64").subarray(-256)
      const authKey = new AuthKey()
      await authKey.setKey(key)
      const state = new MTProtoState(authKey, new Logger(LogLevel.NONE))
      const socket = Net.connect(sim.port, sim.host)
      await new Promise((resolve) => socket.once("connect", resolve))
      const codec = new FullPacketCodec(undefined as never)
      let buffered = Buffer.alloc(0)
      const waiting: Array<(packet: Buffer) => void> = []
      socket.on("data", (chunk: Buffer) => {
        buffered = Buffer.concat([buffered, chunk])
        while (buffered.length >= 4 && buffered.length >= buffered.readInt32LE(0)) {
          const length = buffered.readInt32LE(0)
          const payload = buffered.subarray(8, length - 4)
          buffered = buffered.subarray(length)
          waiting.shift()?.(payload)
        }
      })
      const send = async (request: { getBytes(): Buffer }, contentRelated = true) => {
        const writer = new BinaryWriter(Buffer.alloc(0))
        const msgId = await state.writeDataAsMessage(writer, request.getBytes(), contentRelated)
        socket.write(codec.encodePacket(await state.encryptMessageData(writer.getValue())))
        return BigInt(msgId.toString())
      }
      const receive = async (): Promise<Received> => {
        const packet = await new Promise<Buffer>((resolve) => waiting.push(resolve))
        const message = await state.decryptMessageData(packet)
        const view = message as unknown as { msgId: { toString(): string }; obj: unknown }
        return { msgId: BigInt(view.msgId.toString()), obj: await view.obj, wireBytes: packet.length }
      }
      return { state, socket, send, receive }
    }),
    (client) => Effect.sync(() => client.socket.destroy())
  )

/** A container's messages (GramJS leaves rpc_result inside as a promise), or the message itself. */
const messagesOf = (received: Received): Promise<Array<{ readonly msgId: bigint; readonly obj: unknown }>> =>
  received.obj instanceof Object && "messages" in received.obj
    ? Promise.all((received.obj as ContainerView).messages.map(async (m) => ({ msgId: BigInt(m.msgId.toString()), obj: await m.obj })))
    : Promise.resolve([{ msgId: received.msgId, obj: received.obj }])

/** Learns the salt and opens the session, as GramJS's first exchange does. */
const handshake = (client: Effect.Success<ReturnType<typeof rawClient>>) =>
  Effect.gen(function*() {
    yield* promise(() => client.send(new Api.updates.GetState()))
    client.state.salt = ((yield* promise(() => client.receive())).obj as Api.BadServerSalt).newServerSalt
    yield* promise(() => client.send(new Api.updates.GetState()))
    yield* promise(() => client.receive())
  })

describe("TelegramSimulator MTProto", () => {
  it.live("answers a wrong salt with bad_server_salt, then a new session with new_session_created and the result", () =>
    Effect.gen(function*() {
      const sim = yield* TelegramSimulator.start()
      const client = yield* rawClient(sim)

      const firstId = yield* promise(() => client.send(new Api.updates.GetState()))
      const rejected = yield* promise(() => client.receive())
      assert.instanceOf(rejected.obj, Api.BadServerSalt)
      const badSalt = rejected.obj as Api.BadServerSalt
      assert.strictEqual(BigInt(badSalt.badMsgId.toString()), firstId)
      assert.strictEqual(badSalt.errorCode, 48)

      client.state.salt = badSalt.newServerSalt
      const secondId = yield* promise(() => client.send(new Api.updates.GetState()))
      const answer = yield* promise(() => client.receive())
      assert.strictEqual(answer.msgId % 4n, 3n, "a container is not a response: msg_id is 3 mod 4")
      const inner = yield* promise(() => messagesOf(answer))
      assert.instanceOf(inner[0]?.obj, Api.NewSessionCreated)
      const result = inner.find((m) => m.obj instanceof RPCResult)
      assert.isDefined(result)
      assert.strictEqual(result!.msgId % 4n, 1n, "a response's msg_id is 1 mod 4")
      assert.strictEqual(BigInt((result!.obj as unknown as RpcResultView).reqMsgId.toString()), secondId)
      const ids = [...inner.map((m) => m.msgId), answer.msgId]
      assert.deepStrictEqual(ids, [...ids].sort((a, b) => (a < b ? -1 : 1)), "msg_ids increase, container last")
    }))

  it.live("answers ping with a top-level pong and gzips large results", () =>
    Effect.gen(function*() {
      const sim = yield* TelegramSimulator.start()
      const news = sim.world.addChannel({ username: "newsroom", title: "News", kind: "channel" })
      for (let i = 1; i <= 100; i++) sim.world.post(news, { text: "x".repeat(2000) })
      const client = yield* rawClient(sim)
      yield* handshake(client)

      const pingId = yield* promise(() => client.send(new Api.Ping({ pingId: helpers.returnBigInt(42) }), false))
      const pongMessage = yield* promise(() => client.receive())
      assert.instanceOf(pongMessage.obj, Api.Pong, "pong is not wrapped in rpc_result")
      assert.strictEqual(pongMessage.msgId % 4n, 1n)
      const pong = pongMessage.obj as Api.Pong
      assert.strictEqual(BigInt(pong.msgId.toString()), pingId)
      assert.strictEqual(pong.pingId.toString(), "42")

      yield* promise(() =>
        client.send(new Api.messages.GetHistory({
          peer: new Api.InputPeerChannel({ channelId: helpers.returnBigInt(news.id), accessHash: helpers.returnBigInt(news.accessHash) }),
          offsetId: 0,
          addOffset: 0,
          limit: 100,
          maxId: 0,
          minId: 0,
          hash: helpers.returnBigInt(0)
        }))
      )
      const history = yield* promise(() => client.receive())
      const rpc = (yield* promise(() => messagesOf(history))).find((m) => m.obj instanceof RPCResult)?.obj as RpcResultView
      const page = new BinaryReader(rpc.body).tgReadObject() as Api.messages.ChannelMessages
      assert.strictEqual(page.messages.length, 100)
      assert.isBelow(history.wireBytes, 20_000, "200 KB of history travelled gzipped")
    }))
})
