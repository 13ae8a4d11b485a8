/** How retries spread out: exponential growth from `initialMs` by `factor`, capped. */
export interface BackoffPolicy {
  readonly initialMs: number;
  readonly factor: number;
  readonly capMs: number;
}

/** The retry policy for signing and for the trust watch: 500 ms, doubling, capped at 30 s. */
export const RETRY_BACKOFF: BackoffPolicy = Object.freeze({
  initialMs: 500,
  factor: 2,
  capMs: 30_000,
});

/**
 * The delay before retry number `attempt` (0 for the first retry), in
 * milliseconds, with full jitter: uniform in [0, min(cap, initial * factor^n)).
 * Full jitter keeps a fleet of agents from retrying in lockstep after the CA
 * comes back.
 */
export function backoffDelayMs(
  attempt: number,
  random: () => number,
  policy: BackoffPolicy = RETRY_BACKOFF,
): number {
  const ceilingMs = Math.min(
    policy.capMs,
    policy.initialMs * policy.factor ** Math.max(0, attempt),
  );
  return Math.floor(unitInterval(random()) * ceilingMs);
}

/** Clamps a random draw into [0, 1], so a faulty source cannot produce negative delays. */
export function unitInterval(draw: number): number {
  return Number.isFinite(draw) ? Math.min(1, Math.max(0, draw)) : 0;
}
