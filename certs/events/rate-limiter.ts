/** Events per second each reporter may send on average. */
const DEFAULT_EVENTS_PER_SECOND = 200;

/** Events a reporter may send at once after being quiet (a queue drained after an outage). */
const DEFAULT_EVENT_BURST = 2000;

/** Reporters tracked before idle (full) buckets are dropped. */
const MAX_TRACKED_REPORTERS = 10_000;

interface Bucket {
  tokens: number;
  atMs: number;
}

/**
 * A token bucket per reporter: each holds up to `burst` events and refills
 * at `perSecond`. A batch is admitted whole or not at all. Memory stays
 * bounded: a full bucket is the same as no bucket, so those are dropped once
 * many reporters are tracked.
 */
export class ReporterRateLimiter {
  readonly perSecond: number;
  readonly burst: number;
  private readonly now: () => number;
  private readonly buckets = new Map<string, Bucket>();

  constructor(options: { perSecond?: number; burst?: number; nowMs?: () => number } = {}) {
    this.perSecond = options.perSecond ?? DEFAULT_EVENTS_PER_SECOND;
    this.burst = options.burst ?? DEFAULT_EVENT_BURST;
    this.now = options.nowMs ?? Date.now;
    if (!(this.perSecond > 0) || !(this.burst >= 1)) {
      throw new RangeError('rate limit needs perSecond > 0 and burst >= 1');
    }
  }

  /** Takes `count` events from the reporter's bucket; returns false (taking none) when short. */
  take(reporterId: string, count: number): boolean {
    const nowMs = this.now();
    const known = this.buckets.get(reporterId);
    if (!known && this.buckets.size >= MAX_TRACKED_REPORTERS) this.dropFull(nowMs);
    const bucket = known ?? { tokens: this.burst, atMs: nowMs };
    const elapsedMs = Math.max(0, nowMs - bucket.atMs);
    bucket.tokens = Math.min(this.burst, bucket.tokens + (elapsedMs * this.perSecond) / 1000);
    bucket.atMs = nowMs;
    this.buckets.set(reporterId, bucket);
    if (bucket.tokens < count) return false;
    bucket.tokens -= count;
    return true;
  }

  private dropFull(nowMs: number): void {
    for (const [id, bucket] of this.buckets) {
      const tokens = bucket.tokens + ((nowMs - bucket.atMs) * this.perSecond) / 1000;
      if (tokens >= this.burst) this.buckets.delete(id);
    }
  }
}
