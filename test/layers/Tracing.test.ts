/**
 * The sampler in front of the OTLP exporter, and the connection target the
 * SQL spans name; the whole path, exported to a receiver, is in
 * test/e2e/Traces.test.ts.
 */
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Effect, Layer, Redacted, References, Tracer } from "effect"
import { target } from "../../src/layers/PgClient.ts"
import { offWithoutCollector, sampled } from "../../src/layers/Tracing.ts"
import { batchSpanOptions } from "../../src/programs/MessageTrace.ts"
import { traceparent } from "../../src/services/EventBus.ts"

/** Spans made under a tracer that keeps no root (ratio 0) or every root (ratio 1). */
const underRatio = <A>(ratio: number, effect: Effect.Effect<A>) =>
  effect.pipe(Effect.withTracer(sampled(Tracer.nativeTracer, ratio)))

describe("Tracing", () => {
  it.effect("a root is kept at the ratio, its children follow it", () =>
    Effect.gen(function*() {
      const dropped = yield* underRatio(0, Effect.makeSpan("root", { root: true }))
      const child = yield* underRatio(0, Effect.makeSpan("child", { parent: dropped }))
      assert.isFalse(dropped.sampled)
      assert.isFalse(child.sampled)
      const kept = yield* underRatio(1, Effect.makeSpan("root", { root: true }))
      assert.isTrue(kept.sampled)
      assert.isTrue((yield* underRatio(0, Effect.makeSpan("child", { parent: kept }))).sampled, "a kept trace stays whole")
    }))

  it.effect("a batch span is kept when a message it links is, dropped when none is", () =>
    Effect.gen(function*() {
      const kept = yield* underRatio(1, Effect.makeSpan("message", { root: true }))
      const dropped = yield* underRatio(0, Effect.makeSpan("message", { root: true }))
      const withKept = yield* underRatio(0, Effect.makeSpan("batch", batchSpanOptions([dropped, kept, undefined])))
      assert.isTrue(withKept.sampled, "kept at ratio 0, for the sampled message it links")
      assert.deepStrictEqual(withKept.links.map((link) => link.span), [kept], "links only what is exported")
      const withoutKept = yield* underRatio(1, Effect.makeSpan("batch", batchSpanOptions([dropped])))
      assert.isFalse(withoutKept.sampled, "dropped at ratio 1: no message it carries is exported")
      const untraced = yield* underRatio(1, Effect.makeSpan("batch", batchSpanOptions([undefined])))
      assert.isTrue(untraced.sampled, "untraced events leave it to the ratio")
    }))

  it.effect("traceparent is W3C trace-context version 00 with the sampled flag", () =>
    Effect.gen(function*() {
      const kept = yield* underRatio(1, Effect.makeSpan("publish", { root: true }))
      assert.strictEqual(traceparent(kept), `00-${kept.traceId}-${kept.spanId}-01`)
      assert.match(traceparent(kept), /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/)
      const dropped = yield* underRatio(0, Effect.makeSpan("publish", { root: true }))
      assert.match(traceparent(dropped), /-00$/)
    }))

  it.effect("the API's spans are off without a collector and on with one", () =>
    Effect.gen(function*() {
      const under = (otel: Record<string, unknown>) =>
        Effect.gen(function*() {
          const span = yield* Effect.makeSpan("poll")
          return { enabled: yield* References.TracerEnabled, span }
        }).pipe(Effect.provide(offWithoutCollector.pipe(Layer.provide(ConfigProvider.layer(ConfigProvider.fromUnknown({ otel }))))))
      const off = yield* under({})
      assert.isFalse(off.enabled)
      assert.isFalse(off.span.sampled, "a span made without a collector is a no-op")
      const on = yield* under({ exporterOtlpEndpoint: "http://127.0.0.1:4318" })
      assert.isTrue(on.enabled)
      assert.isTrue(on.span.sampled)
    }))

  it("SQL spans name the URL's host, port and database, not the driver's defaults", () => {
    assert.deepStrictEqual(target(Redacted.make("postgres://app:secret@127.0.0.1:6434/telegram_gateway")), {
      host: "127.0.0.1",
      port: 6434,
      database: "telegram_gateway"
    })
    assert.deepStrictEqual(target(Redacted.make("postgres://app@db.internal/telegram_gateway")), {
      host: "db.internal",
      database: "telegram_gateway"
    })
    assert.deepStrictEqual(target(Redacted.make("postgres:///tg?host=/var/run/postgresql")), {
      host: "/var/run/postgresql",
      database: "tg"
    })
    assert.deepStrictEqual(target(Redacted.make("not a url")), {})
  })
})
