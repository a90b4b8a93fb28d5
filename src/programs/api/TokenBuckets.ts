/**
 * One token bucket per API key, in memory: `perSecond` tokens flow in, up to
 * `burst`; a request takes one. The gateway API is a single process per host,
 * so a shared store (Redis) would add a failure mode for no gain.
 */
export interface TokenBuckets {
  /** Takes a token: 0 when granted, else the milliseconds until one is available. */
  readonly take: (key: string, nowMs: number) => number
}

export const makeTokenBuckets = (options: { readonly perSecond: number; readonly burst: number }): TokenBuckets => {
  const buckets = new Map<string, { tokens: number; updatedMs: number }>()
  return {
    take: (key, nowMs) => {
      const bucket = buckets.get(key) ?? { tokens: options.burst, updatedMs: nowMs }
      bucket.tokens = Math.min(options.burst, bucket.tokens + ((nowMs - bucket.updatedMs) / 1000) * options.perSecond)
      bucket.updatedMs = nowMs
      buckets.set(key, bucket)
      if (bucket.tokens >= 1) {
        bucket.tokens -= 1
        return 0
      }
      return Math.ceil(((1 - bucket.tokens) / options.perSecond) * 1000)
    }
  }
}
