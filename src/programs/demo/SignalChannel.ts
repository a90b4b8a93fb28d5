/**
 * A simulated channel posting trading-signal-like messages, with some edits
 * (a moved target) and deletions (a cancelled signal), as a signals channel does.
 */
import { Effect, Schedule } from "effect"
import type { World } from "../../simulator/index.ts"

const pairs = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "BNBUSDT", "DOGEUSDT"] as const
const basePrices: Record<(typeof pairs)[number], number> = {
  BTCUSDT: 64_000,
  ETHUSDT: 3_100,
  SOLUSDT: 145,
  XRPUSDT: 0.52,
  BNBUSDT: 590,
  DOGEUSDT: 0.13
}

const round = (value: number) => Number(value.toPrecision(5))

/** A signal: side, pair, entry, targets and stop, plus a hashtag entity. */
export const signalText = (sequence: number): string => {
  const pair = pairs[sequence % pairs.length]!
  const side = sequence % 3 === 0 ? "SHORT" : "LONG"
  const entry = basePrices[pair] * (1 + (((sequence * 7919) % 200) - 100) / 10_000)
  const direction = side === "LONG" ? 1 : -1
  const targets = [1.01, 1.02, 1.035].map((factor) => round(entry * (1 + direction * (factor - 1))))
  const stop = round(entry * (1 - direction * 0.015))
  return `#${pair} ${side} 📈\nEntry: ${round(entry)}\nTargets: ${targets.join(" / ")}\nStop: ${stop}`
}

export interface SignalCounts {
  posted: number
  edited: number
  deleted: number
}

/**
 * Posts `rate` messages per second into `channel` until `limit` are posted
 * (forever when undefined); every 8th is edited a little later and every 13th
 * deleted. `counts` is updated as it goes. The edits and deletions run in the
 * caller's scope, so those still due when the last post is made happen too.
 */
export const runSignalChannel = (options: {
  readonly world: World
  readonly channel: number
  readonly rate: number
  readonly limit: number | undefined
  readonly counts: SignalCounts
}) => {
  const { world, channel, counts } = options
  const postOne = Effect.sync(() => {
    const sequence = counts.posted + 1
    const message = world.post(channel, { text: signalText(sequence) })
    counts.posted++
    return message.id
  }).pipe(
    Effect.tap((id) =>
      id % 8 === 0
        ? Effect.sync(() => {
          world.edit(channel, id, `${signalText(id)}\nUPDATE: targets moved, trail stop to entry`)
          counts.edited++
        }).pipe(Effect.delay("400 millis"), Effect.forkScoped)
        : Effect.void
    ),
    Effect.tap((id) =>
      id % 13 === 0
        ? Effect.sync(() => {
          world.delete(channel, [id])
          counts.deleted++
        }).pipe(Effect.delay("900 millis"), Effect.forkScoped)
        : Effect.void
    )
  )
  const interval = Math.max(1, Math.round(1000 / options.rate))
  const schedule = options.limit === undefined
    ? Schedule.spaced(interval)
    : Schedule.spaced(interval).pipe(Schedule.upTo({ times: options.limit - 1 }))
  return postOne.pipe(Effect.repeat(schedule))
}
