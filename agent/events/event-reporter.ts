import { errorCode, errorMessage } from '../../certs/errors.js';
import type { Logger } from '../../certs/log.js';
import type { SecurityEventMessage } from '../../proto/index.js';
import {
  backoffDelayMs,
  systemClock,
  type BackoffPolicy,
  type Clock,
  type TimerHandle,
} from '../identity/index.js';
import type { EventQueue } from './event-queue.js';

/** Most events in one ReportEvents call. */
export const MAX_EVENT_BATCH = 100;

/** How often the queue is looked at while the CA takes batches, in milliseconds. */
export const EVENT_FLUSH_INTERVAL_MS = 250;

/**
 * Retries after a failed report: 250 ms doubling to 5 s, full jitter. The cap
 * is short so that events reach the CA within seconds of its return.
 */
export const EVENT_RETRY_BACKOFF: BackoffPolicy = Object.freeze({
  initialMs: 250,
  factor: 2,
  capMs: 5000,
});

/** gRPC INVALID_ARGUMENT: the CA refused the batch itself, not the moment. */
const GRPC_INVALID_ARGUMENT = 3;

/** What an EventReporter needs. */
export interface EventReporterOptions {
  queue: EventQueue;
  /** Sends one batch; rejects when the CA did not take it. */
  send: (events: SecurityEventMessage[]) => Promise<void>;
  /**
   * The agent's logger. It should feed `queue` (createLogger's `onEvent`), so
   * the `events.dropped` event logged here is forwarded like any other.
   */
  log: Logger;
  clock?: Clock;
  /** Uniform in [0, 1); default Math.random. */
  random?: () => number;
  flushIntervalMs?: number;
  maxBatch?: number;
}

/**
 * Forwards queued security events to the CA: a batch of at most 100 every
 * 250 ms, one call in flight, and on failure a retry with capped backoff
 * that keeps the queue as it is. Once the CA takes a batch again, the events
 * dropped meanwhile by a full queue are reported as one `events.dropped`
 * event (count and time span). Nothing here touches the data path: events
 * reach the queue from the logging call.
 */
export class EventReporter {
  readonly #o: Required<Omit<EventReporterOptions, 'clock' | 'random'>> & {
    clock: Clock;
    random: () => number;
  };
  #timer: TimerHandle | undefined;
  #inFlight: Promise<number> | undefined;
  #failures = 0;
  #running = false;

  constructor(options: EventReporterOptions) {
    this.#o = {
      clock: systemClock,
      random: Math.random,
      flushIntervalMs: EVENT_FLUSH_INTERVAL_MS,
      maxBatch: MAX_EVENT_BATCH,
      ...options,
    };
  }

  /** Starts the send loop; a no-op when running. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#schedule(this.#o.flushIntervalMs);
  }

  /**
   * Stops the loop, then tries for up to `graceMs` to send what is queued, so
   * the events of a shutdown are not lost while the CA is up. Never rejects.
   */
  async stop(graceMs = 0): Promise<void> {
    this.#running = false;
    if (this.#timer !== undefined) this.#o.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#inFlight;
    if (graceMs <= 0) return;

    const deadline = Date.now() + graceMs;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), graceMs);
    });
    try {
      while (this.#o.queue.length > 0 && Date.now() < deadline) {
        const sent = await Promise.race([this.#sendBatch().then((n) => n > 0), timeout]);
        if (!sent) return;
      }
    } finally {
      clearTimeout(timer);
    }
  }

  #schedule(delayMs: number): void {
    if (!this.#running) return;
    this.#timer = this.#o.clock.setTimeout(() => this.#tick(), delayMs);
  }

  #tick(): void {
    this.#timer = undefined;
    if (!this.#running || this.#inFlight !== undefined) return;
    if (this.#o.queue.length === 0) {
      this.#schedule(this.#o.flushIntervalMs);
      return;
    }
    const run = this.#sendBatch();
    this.#inFlight = run;
    void run.then((sent) => {
      this.#inFlight = undefined;
      if (this.#failures > 0) {
        this.#schedule(backoffDelayMs(this.#failures - 1, this.#o.random, EVENT_RETRY_BACKOFF));
        return;
      }
      // After a full batch the rest of a backlog goes at once; otherwise
      // wait for more events.
      const isBacklog = sent === this.#o.maxBatch && this.#o.queue.length > 0;
      this.#schedule(isBacklog ? 0 : this.#o.flushIntervalMs);
    });
  }

  /**
   * Sends the oldest batch once and returns how many events the CA took (0
   * on failure, counted in `#failures`); never rejects.
   */
  async #sendBatch(): Promise<number> {
    const { queue, log } = this.#o;
    const batch = queue.peek(this.#o.maxBatch);
    try {
      await this.#o.send(batch);
    } catch (err) {
      if (isRefusedForGood(err)) {
        // The same batch would be refused again and hold up every later
        // event: it is dropped, counted, and reported with the next success.
        queue.discard(batch.length);
        log.error(
          { err_code: errorCode(err), reason: errorMessage(err), events: batch.length },
          'security event batch refused by the CA, dropped',
        );
        return 0;
      }
      this.#failures++;
      // One line per outage, not one per retry.
      if (this.#failures === 1) {
        log.warn(
          { err_code: errorCode(err), reason: errorMessage(err), queued: queue.length },
          'security event report failed, retrying',
        );
      }
      return 0;
    }
    queue.ack(batch.length);
    if (this.#failures > 0) {
      log.info(
        { failures: this.#failures, queued: queue.length },
        'security event reports resumed',
      );
    }
    this.#failures = 0;
    const dropped = queue.takeDropped();
    if (dropped !== undefined) {
      log.warn(
        {
          event: 'events.dropped',
          count: dropped.count,
          first_dropped_at: new Date(dropped.firstUnixMs).toISOString(),
          last_dropped_at: new Date(dropped.lastUnixMs).toISOString(),
          queue_size: queue.capacity,
        },
        'security events dropped',
      );
    }
    return batch.length;
  }
}

function isRefusedForGood(err: unknown): boolean {
  return (err as { grpcCode?: unknown } | null)?.grpcCode === GRPC_INVALID_ARGUMENT;
}
