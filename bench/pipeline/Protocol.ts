/**
 * What the pipeline bench's processes say to each other over Node's IPC
 * channel (bench/pipeline.ts starts them all), and the one clock they share.
 *
 * Every time in the bench is `monotonicMs()`: `process.hrtime`, which reads
 * CLOCK_MONOTONIC, one clock for every process on the machine, with
 * nanosecond resolution and no wall-clock steps. So a receipt stamped in the
 * gateway process and a delivery stamped in a consumer process subtract
 * directly. (`performance.timeOrigin + performance.now()` is per process: its
 * origin is the wall clock read once at start, so two processes can disagree
 * by the wall clock's adjustments in between; `Date.now()` has 1 ms steps.)
 */

/** Milliseconds on CLOCK_MONOTONIC, shared by all processes on this machine. */
export const monotonicMs = (): number => Number(process.hrtime.bigint()) / 1e6

/**
 * One phase for a target (the gateway process or the raw harness): `count`
 * events, the i-th on channel `channels[i % channels.length]` with message id
 * `floor(i / channels.length) + 1`, at `rate` per second (`null`: as fast as
 * the target accepts them).
 */
export interface PhaseCommand {
  readonly type: "phase"
  readonly id: number
  readonly channels: ReadonlyArray<number>
  readonly rate: number | null
  readonly count: number
}

/** The event at `index` of a phase: its channel and message id. */
export const eventAt = (channels: ReadonlyArray<number>, index: number) => ({
  channelId: channels[index % channels.length]!,
  messageId: Math.floor(index / channels.length) + 1
})

/** The index of a phase's event from its `channel:message` key, or -1. */
export const indexOf = (channels: ReadonlyArray<number>, key: string): number => {
  const [channel, message] = key.split(":")
  const position = channels.indexOf(Number(channel))
  return position < 0 ? -1 : (Number(message) - 1) * channels.length + position
}

/** A target's answer once every event of the phase is committed: receipt and commit time per index. */
export interface PhaseDone {
  readonly type: "phaseDone"
  readonly id: number
  readonly receipts: ReadonlyArray<number>
  readonly commits: ReadonlyArray<number>
  /** The target's `process.memoryUsage()` in MB at the end of the phase: where its RSS goes. */
  readonly memoryMb: Record<string, number>
}

/** `process.memoryUsage()` in MB, for `PhaseDone`. */
export const memoryMb = (): Record<string, number> =>
  Object.fromEntries(Object.entries(process.memoryUsage()).map(([name, bytes]) => [name, Math.round(bytes / 1048576)]))

/** To an observer: record the events of these channels from now on. */
export interface Watch {
  readonly type: "watch"
  readonly channels: ReadonlyArray<number>
}

/** To an observer: answer once `expected` events were seen or `timeoutMs` passed, with each event's time; then forget them. */
export interface Collect {
  readonly type: "collect"
  readonly id: number
  readonly expected: number
  readonly timeoutMs: number
}

export interface Collected {
  readonly type: "collected"
  readonly id: number
  /** `channel:message` to the first time the observer saw it. */
  readonly seen: Record<string, number>
  /** The observer's own event-loop delay p99 since the phase's `watch`, ms: the floor under its stamps. */
  readonly loopDelayP99Ms: number
}

export type ToTarget = PhaseCommand | { readonly type: "stop" }
export type FromTarget = PhaseDone | { readonly type: "ready" }
export type ToObserver = Watch | Collect | { readonly type: "stop" }
export type FromObserver = Collected | { readonly type: "ready" }

/** The synthetic message both targets write: the fields of test/support/TestEvents.ts `makeMessage`. */
export const benchText = (messageId: number) => `BUY BTCUSDT @ ${60_000 + messageId} TP 62000 SL 59000`
