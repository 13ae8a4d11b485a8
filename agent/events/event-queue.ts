import { PalisadeError } from '../../certs/errors.js';
import type { SecurityEventMessage } from '../../proto/index.js';
import { FORWARDED_EVENTS, toSecurityEvent } from './security-event.js';

/** Events held for the CA when no size is given. */
export const DEFAULT_EVENT_QUEUE_SIZE = 1000;

/** Largest queue allowed: each slot holds one logged field object. */
export const MAX_EVENT_QUEUE_SIZE = 100_000;

/** Counts since start, for metrics. */
export interface EventQueueCounts {
  /** Events taken into the queue. */
  readonly queued: number;
  /** Events the CA accepted. */
  readonly sent: number;
  /** Events refused because the queue was full. */
  readonly dropped: number;
  /** Events waiting now. */
  readonly length: number;
}

/** Events dropped since the last report of them, with the span of time they cover. */
export interface DroppedSpan {
  readonly count: number;
  readonly firstUnixMs: number;
  readonly lastUnixMs: number;
}

/**
 * A bounded FIFO of security events on their way to the CA. `record` is
 * called from the logging path: it keeps a reference to the logged fields
 * and the time in preallocated slots, never blocks and never grows; when
 * the queue is full the new event is dropped and counted. Conversion to the
 * wire form happens in `peek`, off the data path.
 */
export class EventQueue {
  readonly capacity: number;
  readonly #fields: (Readonly<Record<string, unknown>> | undefined)[];
  readonly #atMs: Float64Array;
  readonly #now: () => number;
  #head = 0;
  #length = 0;
  #queued = 0;
  #sent = 0;
  #dropped = 0;
  #droppedSince = 0;
  #firstDroppedMs = 0;
  #lastDroppedMs = 0;

  /** Throws CONFIG_INVALID for a capacity outside 1..MAX_EVENT_QUEUE_SIZE. */
  constructor(capacity: number = DEFAULT_EVENT_QUEUE_SIZE, now: () => number = Date.now) {
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > MAX_EVENT_QUEUE_SIZE) {
      throw new PalisadeError(
        'CONFIG_INVALID',
        `event queue size must be a whole number from 1 to ${MAX_EVENT_QUEUE_SIZE}: ${capacity}`,
      );
    }
    this.capacity = capacity;
    this.#fields = new Array<Readonly<Record<string, unknown>> | undefined>(capacity).fill(
      undefined,
    );
    this.#atMs = new Float64Array(capacity);
    this.#now = now;
  }

  /**
   * Takes a logged line's fields if its `event` is one that is forwarded
   * (FORWARDED_EVENTS); others are ignored. Bound, so it can be handed to
   * createLogger's `onEvent` as is.
   */
  readonly record = (fields: Readonly<Record<string, unknown>>): void => {
    const kind = fields['event'];
    if (typeof kind !== 'string' || !FORWARDED_EVENTS.has(kind)) return;
    const nowMs = this.#now();
    if (this.#length === this.capacity) {
      this.#dropped++;
      if (this.#droppedSince === 0) this.#firstDroppedMs = nowMs;
      this.#droppedSince++;
      this.#lastDroppedMs = nowMs;
      return;
    }
    const slot = (this.#head + this.#length) % this.capacity;
    this.#fields[slot] = fields;
    this.#atMs[slot] = nowMs;
    this.#length++;
    this.#queued++;
  };

  /** Events waiting. */
  get length(): number {
    return this.#length;
  }

  /** The oldest `max` events as wire messages, left in the queue until `ack`. */
  peek(max: number): SecurityEventMessage[] {
    const n = Math.min(max, this.#length);
    const batch: SecurityEventMessage[] = [];
    for (let i = 0; i < n; i++) {
      const slot = (this.#head + i) % this.capacity;
      batch.push(toSecurityEvent(this.#fields[slot] ?? {}, this.#atMs[slot] ?? 0));
    }
    return batch;
  }

  /** Removes the oldest `n` events, which the CA accepted. */
  ack(n: number): void {
    this.#sent += this.#removeOldest(n);
  }

  /**
   * Removes the oldest `n` events as dropped: a batch the CA refused for
   * good, which no retry would get through. They count into the next
   * `events.dropped` report like overflow does.
   */
  discard(n: number): void {
    const count = this.#removeOldest(n);
    if (count === 0) return;
    const nowMs = this.#now();
    this.#dropped += count;
    if (this.#droppedSince === 0) this.#firstDroppedMs = nowMs;
    this.#droppedSince += count;
    this.#lastDroppedMs = nowMs;
  }

  /** Frees the oldest `n` slots (at most those waiting); returns how many. */
  #removeOldest(n: number): number {
    const count = Math.min(n, this.#length);
    for (let i = 0; i < count; i++) this.#fields[(this.#head + i) % this.capacity] = undefined;
    this.#head = (this.#head + count) % this.capacity;
    this.#length -= count;
    return count;
  }

  /** The drops not yet reported, and resets them; undefined when there were none. */
  takeDropped(): DroppedSpan | undefined {
    if (this.#droppedSince === 0) return undefined;
    const span = {
      count: this.#droppedSince,
      firstUnixMs: this.#firstDroppedMs,
      lastUnixMs: this.#lastDroppedMs,
    };
    this.#droppedSince = 0;
    return span;
  }

  /** Counts since start. */
  counts(): EventQueueCounts {
    return { queued: this.#queued, sent: this.#sent, dropped: this.#dropped, length: this.#length };
  }
}
