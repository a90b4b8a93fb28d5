/**
 * The process's own health as Prometheus series, read when scraped: resident
 * memory, V8 heap, CPU time, event-loop delay (over the last window) and
 * garbage collection pauses by kind. Used by the daemon and the API alike.
 */
import { Clock, Duration, Effect, Layer, Metric, Schedule } from "effect"
import { constants, monitorEventLoopDelay, PerformanceObserver } from "node:perf_hooks"

export const residentMemory = Metric.gauge("process_resident_memory_bytes", {
  description: "Resident set size of the process"
})
export const heapUsed = Metric.gauge("nodejs_heap_used_bytes", { description: "V8 heap in use" })
export const heapTotal = Metric.gauge("nodejs_heap_total_bytes", { description: "V8 heap reserved" })
export const externalMemory = Metric.gauge("nodejs_external_memory_bytes", {
  description: "Memory of C++ objects bound to JavaScript (buffers included)"
})
export const cpuSeconds = Metric.counter("process_cpu_seconds_total", {
  description: "User and system CPU time spent by the process",
  incremental: true
})
export const startTime = Metric.gauge("process_start_time_seconds", {
  description: "Start of the process, seconds since the Unix epoch"
})
export const eventLoopDelayP50 = Metric.gauge("nodejs_eventloop_delay_p50_seconds", {
  description: "Median event-loop delay over the last window (eventLoopWindow)"
})
export const eventLoopDelayP99 = Metric.gauge("nodejs_eventloop_delay_p99_seconds", {
  description: "99th percentile of the event-loop delay over the last window (eventLoopWindow)"
})
export const eventLoopDelayMax = Metric.gauge("nodejs_eventloop_delay_max_seconds", {
  description: "Longest event-loop delay over the last window (eventLoopWindow)"
})
/** Attribute `kind`: minor, major, incremental, weakcb. */
export const gcDuration = Metric.histogram("nodejs_gc_duration_seconds", {
  description: "Garbage collection pauses, by kind",
  boundaries: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1]
})

/** The event-loop delay gauges describe this much recent time. */
export const eventLoopWindow = Duration.seconds(15)

const gcKinds: Record<number, string> = {
  [constants.NODE_PERFORMANCE_GC_MINOR]: "minor",
  [constants.NODE_PERFORMANCE_GC_MAJOR]: "major",
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: "incremental",
  [constants.NODE_PERFORMANCE_GC_WEAKCB]: "weakcb"
}

export const layer = Layer.effectDiscard(Effect.gen(function*() {
  const context = yield* Effect.context<never>()
  const gauge = (metric: Metric.Gauge<number>, read: () => number) =>
    Effect.acquireRelease(
      Effect.sync(() => Metric.registerUnsafe(metric, context, { get: () => ({ value: read() }), update: () => {}, modify: () => {} })),
      (registration) => Effect.sync(() => registration.remove())
    )
  const startedAt = (yield* Clock.currentTimeMillis) / 1000 - process.uptime()
  yield* gauge(residentMemory, () => process.memoryUsage.rss())
  yield* gauge(heapUsed, () => process.memoryUsage().heapUsed)
  yield* gauge(heapTotal, () => process.memoryUsage().heapTotal)
  yield* gauge(externalMemory, () => process.memoryUsage().external)
  yield* gauge(startTime, () => startedAt)
  yield* Effect.acquireRelease(
    Effect.sync(() =>
      Metric.registerUnsafe(cpuSeconds, context, {
        get: () => {
          const usage = process.cpuUsage()
          return { count: (usage.user + usage.system) / 1e6, incremental: true }
        },
        update: () => {},
        modify: () => {}
      })
    ),
    (registration) => Effect.sync(() => registration.remove())
  )

  // Event-loop delay: sampled by Node every 10 ms, published once per window.
  const monitor = yield* Effect.acquireRelease(
    Effect.sync(() => {
      const histogram = monitorEventLoopDelay({ resolution: 10 })
      histogram.enable()
      return histogram
    }),
    (histogram) => Effect.sync(() => histogram.disable())
  )
  const publishWindow = Effect.sync(() => {
    const seconds = (nanoseconds: number) => (Number.isFinite(nanoseconds) ? nanoseconds / 1e9 : 0)
    const values = [monitor.percentile(50), monitor.percentile(99), monitor.max].map(seconds)
    monitor.reset()
    return values
  }).pipe(
    Effect.flatMap(([p50, p99, max]) =>
      Effect.all([
        Metric.update(eventLoopDelayP50, p50!),
        Metric.update(eventLoopDelayP99, p99!),
        Metric.update(eventLoopDelayMax, max!)
      ])
    )
  )
  yield* Effect.all([Metric.update(eventLoopDelayP50, 0), Metric.update(eventLoopDelayP99, 0), Metric.update(eventLoopDelayMax, 0)])
  yield* publishWindow.pipe(Effect.delay(eventLoopWindow), Effect.repeat(Schedule.forever), Effect.forkScoped)

  // GC pauses, as V8 reports them.
  for (const kind of Object.values(gcKinds)) yield* Metric.value(gcDuration.pipe(Metric.withAttributes({ kind })))
  const byKind = new Map(Object.values(gcKinds).map((kind) => [kind, gcDuration.pipe(Metric.withAttributes({ kind }))]))
  yield* Effect.acquireRelease(
    Effect.sync(() => {
      const observer = new PerformanceObserver((list) => {
        for (const entry of list.getEntries()) {
          const kind = gcKinds[(entry as { detail?: { kind?: number } }).detail?.kind ?? -1]
          const metric = kind === undefined ? undefined : byKind.get(kind)
          metric?.updateUnsafe(entry.duration / 1000, context)
        }
      })
      observer.observe({ entryTypes: ["gc"] })
      return observer
    }),
    (observer) => Effect.sync(() => observer.disconnect())
  )
}))
