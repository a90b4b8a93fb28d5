/**
 * Telegram's pts rule for one update sequence (a channel, or the account's
 * common sequence), as core.telegram.org/api/updates states it and
 * ../shared/TELEGRAM.md summarises: an update with `pts` and `pts_count`
 * applies when `local + pts_count == pts`, is already applied when
 * `local + pts_count > pts`, and otherwise reveals a gap. Updates beyond a gap
 * wait here (bounded) until the gap is filled by later pushes or a difference
 * moves `local` past it. Pure and synchronous: the engine owns the timing.
 */
export interface Sequenced<A> {
  readonly pts: number
  readonly ptsCount: number
  readonly item: A
}

export class PtsSequence<A> {
  /** The pts up to which updates were accepted (handed on, maybe not yet committed). */
  pts: number
  private readonly waiting = new Map<number, Sequenced<A>>()
  private readonly capacity: number

  constructor(pts: number, capacity: number) {
    this.pts = pts
    this.capacity = capacity
  }

  /** Updates held beyond a gap. */
  get gap(): boolean {
    return this.waiting.size > 0
  }

  /**
   * Offers one update; returns the updates now applicable, in order (it and
   * any that waited on it). `overflow` is true when it had to be dropped
   * because too many wait: a difference must recover it.
   */
  offer(update: Sequenced<A>): { readonly apply: ReadonlyArray<Sequenced<A>>; readonly overflow: boolean } {
    if (update.pts <= this.pts) return { apply: [], overflow: false } // already applied (a duplicate, or an old one)
    if (update.pts - update.ptsCount === this.pts) {
      this.pts = update.pts
      return { apply: [update, ...this.drain()], overflow: false }
    }
    if (this.waiting.has(update.pts)) return { apply: [], overflow: false }
    if (this.waiting.size >= this.capacity) return { apply: [], overflow: true }
    this.waiting.set(update.pts, update)
    return { apply: [], overflow: false }
  }

  /**
   * A difference brought the sequence to `pts`: what waited at or below it is
   * covered; returns what now applies beyond it.
   */
  advanceTo(pts: number): ReadonlyArray<Sequenced<A>> {
    if (pts > this.pts) this.pts = pts
    for (const waitingPts of this.waiting.keys()) {
      if (waitingPts <= this.pts) this.waiting.delete(waitingPts)
    }
    return this.drain()
  }

  private drain(): Array<Sequenced<A>> {
    const applied: Array<Sequenced<A>> = []
    let progressed = true
    while (progressed && this.waiting.size > 0) {
      progressed = false
      for (const [waitingPts, update] of this.waiting) {
        if (waitingPts <= this.pts) {
          this.waiting.delete(waitingPts)
        } else if (waitingPts - update.ptsCount === this.pts) {
          this.waiting.delete(waitingPts)
          this.pts = waitingPts
          applied.push(update)
          progressed = true
        }
      }
    }
    return applied
  }
}
