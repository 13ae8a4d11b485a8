// A closed-loop load generator: a fixed number of calls in flight per client,
// each started as soon as the previous one on its slot answers, counted only
// inside a measurement window that follows a warm-up.
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { errorCode } from '../../../certs/errors.js';
import { round, summarizeLatencies, type LatencySummary } from './latency-summary.js';

/** How a load run is shaped. */
export interface SigningLoadOptions {
  /** How many clients (channels) issue calls. */
  clientCount: number;
  /** Calls each client keeps in flight. */
  inFlightPerClient: number;
  /** Time before the window opens, to settle connections and JIT, in ms. */
  warmupMs: number;
  /** Length of the measurement window, in ms. */
  durationMs: number;
  /** Makes one call; `clientIndex` picks the client, `callIndex` counts its calls. */
  call(clientIndex: number, callIndex: number): Promise<unknown>;
  /** Called as the window opens and closes, to sample resource use around it. */
  onWindowStart(): void;
  onWindowEnd(): void;
}

/** What a load run measured inside its window. */
export interface SigningLoadResult {
  /** Calls that answered successfully inside the window. */
  completed: number;
  signingsPerSecond: number;
  latency: LatencySummary;
  /** Calls that failed inside the window, and how often each error code came up. */
  errors: number;
  errorCodes: Record<string, number>;
  windowMs: number;
}

/**
 * Runs the load for warm-up plus duration, then waits for the calls still in
 * flight. A call counts when it finishes inside the window; its latency is
 * measured from its own start, which may fall in the warm-up.
 */
export async function runSigningLoad(options: SigningLoadOptions): Promise<SigningLoadResult> {
  const latenciesMs: number[] = [];
  const errorCodes: Record<string, number> = {};
  let errors = 0;
  let windowStart = Number.POSITIVE_INFINITY;
  let windowEnd = Number.POSITIVE_INFINITY;
  let isStopping = false;
  const callCounts = new Array<number>(options.clientCount).fill(0);

  const slot = async (clientIndex: number) => {
    while (!isStopping) {
      const callIndex = callCounts[clientIndex] ?? 0;
      callCounts[clientIndex] = callIndex + 1;
      const started = performance.now();
      let failure: string | undefined;
      try {
        await options.call(clientIndex, callIndex);
      } catch (err) {
        failure = errorCode(err);
      }
      const finished = performance.now();
      if (finished < windowStart || finished >= windowEnd) continue;
      if (failure === undefined) {
        latenciesMs.push(finished - started);
      } else {
        errors += 1;
        errorCodes[failure] = (errorCodes[failure] ?? 0) + 1;
      }
    }
  };

  const slots: Promise<void>[] = [];
  for (let client = 0; client < options.clientCount; client++) {
    for (let i = 0; i < options.inFlightPerClient; i++) slots.push(slot(client));
  }
  await sleep(options.warmupMs);
  options.onWindowStart();
  windowStart = performance.now();
  await sleep(options.durationMs);
  windowEnd = performance.now();
  options.onWindowEnd();
  isStopping = true;
  await Promise.all(slots);

  const windowMs = windowEnd - windowStart;
  return {
    completed: latenciesMs.length,
    signingsPerSecond: round((latenciesMs.length * 1000) / windowMs),
    latency: summarizeLatencies(latenciesMs),
    errors,
    errorCodes,
    windowMs: round(windowMs),
  };
}
