/**
 * An OTLP/HTTP trace receiver in the test process: what a collector would get
 * from the gateway, decoded from protobuf (the default, `http/protobuf`) or
 * JSON (`http/json`). The protobuf reader knows only the fields of
 * ExportTraceServiceRequest the tests look at (opentelemetry-proto,
 * trace/v1/trace.proto and common/v1/common.proto).
 */
import { Effect } from "effect"
import { createServer, type IncomingMessage } from "node:http"

export interface ReceivedSpan {
  readonly traceId: string
  readonly spanId: string
  readonly parentSpanId: string | undefined
  readonly name: string
  /** OTLP's SpanKind: 1 internal, 2 server, 3 client, 4 producer, 5 consumer. */
  readonly kind: number
  readonly startNanos: bigint
  readonly endNanos: bigint
  readonly attributes: Readonly<Record<string, unknown>>
  readonly links: ReadonlyArray<{ readonly traceId: string; readonly spanId: string }>
  /** 0 unset, 1 ok, 2 error. */
  readonly statusCode: number
  readonly serviceName: string | undefined
}

type Field = { readonly wire: number; readonly value: bigint | Buffer }

/** One protobuf message as its fields, by number, in order. */
const fields = (bytes: Buffer): Map<number, Array<Field>> => {
  const result = new Map<number, Array<Field>>()
  let offset = 0
  const varint = () => {
    let value = 0n
    let shift = 0n
    while (true) {
      const byte = bytes[offset++]!
      value |= BigInt(byte & 0x7f) << shift
      if ((byte & 0x80) === 0) return value
      shift += 7n
    }
  }
  while (offset < bytes.length) {
    const key = Number(varint())
    const wire = key & 7
    let value: bigint | Buffer
    if (wire === 0) value = varint()
    else if (wire === 1) (value = bytes.subarray(offset, offset + 8), offset += 8)
    else if (wire === 5) (value = bytes.subarray(offset, offset + 4), offset += 4)
    else if (wire === 2) {
      const length = Number(varint())
      value = bytes.subarray(offset, offset + length)
      offset += length
    } else throw new Error(`unsupported protobuf wire type ${wire}`)
    const list = result.get(key >> 3) ?? []
    list.push({ wire, value })
    result.set(key >> 3, list)
  }
  return result
}

const all = (message: Map<number, Array<Field>>, field: number): Array<Buffer> =>
  (message.get(field) ?? []).map((entry) => entry.value as Buffer)
const one = (message: Map<number, Array<Field>>, field: number): Field | undefined => message.get(field)?.[0]
const text = (message: Map<number, Array<Field>>, field: number): string =>
  (one(message, field)?.value as Buffer | undefined)?.toString("utf8") ?? ""
const hex = (message: Map<number, Array<Field>>, field: number): string =>
  (one(message, field)?.value as Buffer | undefined)?.toString("hex") ?? ""

const anyValue = (bytes: Buffer): unknown => {
  const value = fields(bytes)
  if (value.has(1)) return text(value, 1)
  if (value.has(2)) return one(value, 2)!.value === 1n
  if (value.has(3)) return Number(BigInt.asIntN(64, one(value, 3)!.value as bigint))
  if (value.has(4)) return (one(value, 4)!.value as Buffer).readDoubleLE(0)
  if (value.has(5)) return all(fields(one(value, 5)!.value as Buffer), 1).map(anyValue)
  return undefined
}

const attributesOf = (list: Array<Buffer>): Record<string, unknown> =>
  Object.fromEntries(list.map((bytes) => {
    const pair = fields(bytes)
    return [text(pair, 1), pair.has(2) ? anyValue(one(pair, 2)!.value as Buffer) : undefined]
  }))

const fromProtobuf = (body: Buffer): Array<ReceivedSpan> =>
  all(fields(body), 1).flatMap((resourceSpans) => {
    const resource = fields(resourceSpans)
    const resourceAttributes = resource.has(1) ? attributesOf(all(fields(one(resource, 1)!.value as Buffer), 1)) : {}
    return all(resource, 2).flatMap((scopeSpans) =>
      all(fields(scopeSpans), 2).map((bytes) => {
        const span = fields(bytes)
        const status = span.has(15) ? fields(one(span, 15)!.value as Buffer) : undefined
        const parent = hex(span, 4)
        return {
          traceId: hex(span, 1),
          spanId: hex(span, 2),
          parentSpanId: parent === "" ? undefined : parent,
          name: text(span, 5),
          kind: Number(one(span, 6)?.value ?? 0n),
          startNanos: (one(span, 7)!.value as Buffer).readBigUInt64LE(0),
          endNanos: (one(span, 8)!.value as Buffer).readBigUInt64LE(0),
          attributes: attributesOf(all(span, 9)),
          links: all(span, 13).map((link) => {
            const decoded = fields(link)
            return { traceId: hex(decoded, 1), spanId: hex(decoded, 2) }
          }),
          statusCode: status === undefined ? 0 : Number(one(status, 3)?.value ?? 0n),
          serviceName: resourceAttributes["service.name"] as string | undefined
        }
      })
    )
  })

interface JsonKeyValue {
  readonly key: string
  readonly value: Record<string, unknown>
}
const jsonValue = (value: Record<string, unknown>): unknown =>
  "stringValue" in value
    ? value.stringValue
    : "boolValue" in value
    ? value.boolValue
    : "intValue" in value
    ? Number(value.intValue)
    : "doubleValue" in value
    ? value.doubleValue
    : undefined
const jsonAttributes = (list: ReadonlyArray<JsonKeyValue> | undefined) =>
  Object.fromEntries((list ?? []).map((pair) => [pair.key, jsonValue(pair.value)]))

const fromJson = (body: Buffer): Array<ReceivedSpan> => {
  const request = JSON.parse(body.toString("utf8")) as {
    resourceSpans: Array<{ resource?: { attributes?: Array<JsonKeyValue> }; scopeSpans: Array<{ spans: Array<any> }> }>
  }
  return request.resourceSpans.flatMap((resourceSpans) => {
    const serviceName = jsonAttributes(resourceSpans.resource?.attributes)["service.name"] as string | undefined
    return resourceSpans.scopeSpans.flatMap((scope) =>
      scope.spans.map((span) => ({
        traceId: span.traceId,
        spanId: span.spanId,
        parentSpanId: span.parentSpanId || undefined,
        name: span.name,
        kind: span.kind,
        startNanos: BigInt(span.startTimeUnixNano),
        endNanos: BigInt(span.endTimeUnixNano),
        attributes: jsonAttributes(span.attributes),
        links: (span.links ?? []).map((link: { traceId: string; spanId: string }) => ({ traceId: link.traceId, spanId: link.spanId })),
        statusCode: span.status?.code ?? 0,
        serviceName
      }))
    )
  })
}

const bodyOf = (request: IncomingMessage) =>
  new Promise<Buffer>((resolve, reject) => {
    const chunks: Array<Buffer> = []
    request.on("data", (chunk: Buffer) => chunks.push(chunk))
    request.on("end", () => resolve(Buffer.concat(chunks)))
    request.on("error", reject)
  })

export interface OtlpReceiver {
  readonly endpoint: string
  readonly spans: () => ReadonlyArray<ReceivedSpan>
  /** Content types of the export requests received, in order. */
  readonly contentTypes: () => ReadonlyArray<string>
}

/** Listens on 127.0.0.1:`port` until the scope closes; answers every export 200. */
export const startOtlpReceiver = (port: number) =>
  Effect.gen(function*() {
    const spans: Array<ReceivedSpan> = []
    const contentTypes: Array<string> = []
    const server = createServer((request, response) => {
      bodyOf(request).then((body) => {
        const type = request.headers["content-type"] ?? ""
        contentTypes.push(type)
        if (request.url !== "/v1/traces") return void response.writeHead(404).end()
        spans.push(...(type.includes("json") ? fromJson(body) : fromProtobuf(body)))
        response.writeHead(200, { "content-type": type }).end()
      }).catch((error) => response.writeHead(400).end(String(error)))
    })
    yield* Effect.acquireRelease(
      Effect.callback<void, Error>((resume) => {
        server.once("error", (error) => resume(Effect.fail(error)))
        server.listen(port, "127.0.0.1", () => resume(Effect.void))
      }),
      () => Effect.callback<void>((resume) => void server.close(() => resume(Effect.void)))
    ).pipe(Effect.orDie)
    return {
      endpoint: `http://127.0.0.1:${port}`,
      spans: () => spans,
      contentTypes: () => contentTypes
    } satisfies OtlpReceiver
  })
