// Measures how fast a revocation reaches every open WatchTrust stream: the
// time from just before the admin Revoke call to the arrival, on each stream,
// of the first update that names the revoked serial.
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { CaClient } from '../../../certs/client/index.js';
import { summarizeLatencies, type LatencySummary } from './latency-summary.js';

/** How long every stream may take to deliver the initial trust state, in ms. */
const INITIAL_STATE_TIMEOUT_MS = 15_000;

/** How long the last revocation may take to reach every stream, in ms. */
const DRAIN_TIMEOUT_MS = 5_000;

/** How often the bench checks whether the streams have caught up, in ms. */
const POLL_MS = 10;

/** How the fan-out is shaped. */
export interface FanoutOptions {
  /** Clients carrying the streams; the streams are spread over them evenly. */
  watchers: readonly CaClient[];
  streamCount: number;
  /** Admin client making the revocations. */
  admin: CaClient;
  /** Serials to revoke, one revocation each, in order. */
  serials: readonly string[];
  /** Time from the start of one revocation to the start of the next, in ms. */
  intervalMs: number;
}

/** What the fan-out measured. */
export interface FanoutResult {
  streams: number;
  revocations: number;
  /** Time until every stream held the initial trust state, in ms. */
  initialStateMs: number;
  /** Arrivals expected (streams x revocations) and those that never came. */
  expectedArrivals: number;
  missingArrivals: number;
  streamErrors: number;
  /** Revoke-to-arrival latency over every arrival. */
  arrival: LatencySummary;
  /** Latency of the admin Revoke calls themselves (durable before they answer). */
  revokeCall: LatencySummary;
}

interface PendingRevocation {
  serial: string;
  startedAt: number;
}

/**
 * Opens the streams, waits for each to get the initial state, performs the
 * revocations and collects the per-stream arrival latencies. Cancels every
 * stream before it returns, also when it fails.
 */
export async function measureRevocationFanout(options: FanoutOptions): Promise<FanoutResult> {
  const pending: PendingRevocation[] = [];
  const arrivalsMs: number[] = [];
  const revokeCallMs: number[] = [];
  const cancels: (() => void)[] = [];
  let initialised = 0;
  let streamErrors = 0;

  const openedAt = performance.now();
  for (let i = 0; i < options.streamCount; i++) {
    const client = options.watchers[i % options.watchers.length] as CaClient;
    const seen = new Set<string>();
    let hasInitialState = false;
    cancels.push(
      client.watchTrust(
        0,
        (update) => {
          const now = performance.now();
          if (!hasInitialState) {
            hasInitialState = true;
            initialised += 1;
          }
          const revoked = new Set(update.revokedSerials);
          for (const revocation of pending) {
            if (seen.has(revocation.serial) || !revoked.has(revocation.serial)) continue;
            seen.add(revocation.serial);
            arrivalsMs.push(now - revocation.startedAt);
          }
        },
        (err) => {
          if (err) streamErrors += 1;
        },
      ),
    );
  }

  try {
    await waitUntil(() => initialised === options.streamCount, INITIAL_STATE_TIMEOUT_MS);
    if (initialised < options.streamCount) {
      throw new Error(`only ${initialised} of ${options.streamCount} streams got the trust state`);
    }
    const initialStateMs = performance.now() - openedAt;

    for (const serial of options.serials) {
      const startedAt = performance.now();
      pending.push({ serial, startedAt });
      await options.admin.revoke({ serial, reason: 'superseded' });
      revokeCallMs.push(performance.now() - startedAt);
      const nextAt = startedAt + options.intervalMs;
      await sleep(Math.max(0, nextAt - performance.now()));
    }

    const expectedArrivals = options.streamCount * options.serials.length;
    await waitUntil(() => arrivalsMs.length >= expectedArrivals, DRAIN_TIMEOUT_MS);
    return {
      streams: options.streamCount,
      revocations: options.serials.length,
      initialStateMs: Math.round(initialStateMs),
      expectedArrivals,
      missingArrivals: expectedArrivals - arrivalsMs.length,
      streamErrors,
      arrival: summarizeLatencies(arrivalsMs),
      revokeCall: summarizeLatencies(revokeCallMs),
    };
  } finally {
    for (const cancel of cancels) cancel();
  }
}

async function waitUntil(isDone: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!isDone() && performance.now() < deadline) await sleep(POLL_MS);
}
