// Replica lag measured against samples of the primary's WAL position taken by pooler's own clock,
// so that no server's clock is trusted and an idle, caught-up replica shows 0 rather than a growing age.

/** Time-ordered samples (our clock, primary's WAL position), one per observed advance of the position. */
export class LsnHistory {
  private readonly times: Float64Array;
  private readonly lsns: BigUint64Array;
  private start = 0;
  private count = 0;
  readonly capacity: number;

  constructor(capacity = 4096) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`capacity must be a positive integer, got ${capacity}`);
    this.capacity = capacity;
    this.times = new Float64Array(capacity);
    this.lsns = new BigUint64Array(capacity);
  }

  get size(): number {
    return this.count;
  }

  /** The primary's newest known position; 0n before the first sample. */
  get latest(): bigint {
    return this.count === 0 ? 0n : this.lsns[this.slot(this.count - 1)]!;
  }

  clear(): void {
    this.start = 0;
    this.count = 0;
  }

  /**
   * Note the primary's position at `now`. Only an advance is kept (the first time a position was seen is
   * what lag is measured from). A position going backwards means another server or timeline (promotion,
   * crash losing unflushed WAL): the old samples say nothing about it, so they are dropped.
   */
  record(now: number, lsn: bigint): void {
    if (this.count > 0) {
      const latest = this.latest;
      if (lsn === latest) return;
      if (lsn < latest) this.clear();
    }
    if (this.count === this.capacity) {
      this.start = (this.start + 1) % this.capacity;
      this.count--;
    }
    const i = this.slot(this.count);
    this.times[i] = now;
    this.lsns[i] = lsn;
    this.count++;
  }

  /** WAL bytes the replica has yet to replay, as far as the primary's last sample tells. */
  lagBytes(replayLsn: bigint): number {
    const d = this.latest - replayLsn;
    return d > 0n ? Number(d) : 0;
  }

  /**
   * How long the primary has had WAL the replica has not replayed: now minus the time of the first sample
   * beyond the replica's replay position (the oldest kept sample if all are beyond it). 0 when caught up.
   */
  lagMs(replayLsn: bigint, now: number): number {
    if (this.count === 0 || replayLsn >= this.latest) return 0;
    // Samples strictly increase: binary search for the first one past replayLsn.
    let lo = 0;
    let hi = this.count - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.lsns[this.slot(mid)]! > replayLsn) hi = mid;
      else lo = mid + 1;
    }
    return Math.max(0, now - this.times[this.slot(lo)]!);
  }

  private slot(i: number): number {
    return (this.start + i) % this.capacity;
  }
}
