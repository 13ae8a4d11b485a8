/** An opaque timer returned by `Clock.setTimeout`, only good for `Clock.clearTimeout`. */
export type TimerHandle = object;

/**
 * The time source and timer queue of the identity manager. Injected so that
 * tests drive rotation by advancing a fake clock instead of sleeping.
 */
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
  /** Runs `fn` once after `ms` milliseconds. */
  setTimeout(fn: () => void, ms: number): TimerHandle;
  /** Cancels a timer; a fired or already cleared timer is ignored. */
  clearTimeout(handle: TimerHandle): void;
}

/**
 * The real clock. Its timers are `unref()`ed: a pending renewal must not keep
 * the process alive once everything else has stopped.
 */
export const systemClock: Clock = Object.freeze({
  now: () => Date.now(),
  setTimeout: (fn: () => void, ms: number): TimerHandle => setTimeout(fn, ms).unref(),
  clearTimeout: (handle: TimerHandle) => clearTimeout(handle as NodeJS.Timeout),
});

interface FakeTimer {
  readonly dueMs: number;
  readonly seq: number;
  readonly fn: () => void;
}

/**
 * A clock for tests: time stands still until `advance` moves it, running every
 * timer that falls due on the way in due order (ties in the order they were
 * set), each with `now()` equal to its due time.
 */
export class FakeClock implements Clock {
  #nowMs: number;
  #seq = 0;
  readonly #timers = new Set<FakeTimer>();

  /** Starts at `startMs` (default: the real time now). */
  constructor(startMs: number = Date.now()) {
    this.#nowMs = startMs;
  }

  /** The fake time, in milliseconds since the Unix epoch. */
  now(): number {
    return this.#nowMs;
  }

  /** Queues `fn` to run when the clock has been advanced by `ms` (negative counts as 0). */
  setTimeout(fn: () => void, ms: number): TimerHandle {
    const timer: FakeTimer = { dueMs: this.#nowMs + Math.max(0, ms), seq: this.#seq++, fn };
    this.#timers.add(timer);
    return timer;
  }

  /** Drops a queued timer. */
  clearTimeout(handle: TimerHandle): void {
    this.#timers.delete(handle as FakeTimer);
  }

  /**
   * Moves time forward by `ms`, running due timers in order; timers set by
   * those callbacks run too when they fall due before the target time.
   */
  advance(ms: number): void {
    const targetMs = this.#nowMs + Math.max(0, ms);
    for (let next = this.#earliest(); next && next.dueMs <= targetMs; next = this.#earliest()) {
      this.#timers.delete(next);
      this.#nowMs = next.dueMs;
      next.fn();
    }
    this.#nowMs = targetMs;
  }

  /** Moves time forward to `atMs` (no-op when that is in the past). */
  advanceTo(atMs: number): void {
    this.advance(atMs - this.#nowMs);
  }

  /** Delays of the queued timers from now, in milliseconds, soonest first. */
  pendingDelaysMs(): number[] {
    return [...this.#timers].map((t) => t.dueMs - this.#nowMs).sort((a, b) => a - b);
  }

  #earliest(): FakeTimer | undefined {
    let best: FakeTimer | undefined;
    for (const timer of this.#timers) {
      if (!best || timer.dueMs < best.dueMs || (timer.dueMs === best.dueMs && timer.seq < best.seq))
        best = timer;
    }
    return best;
  }
}
