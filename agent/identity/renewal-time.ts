import { unitInterval } from './backoff.js';

/** Renewal falls at this fraction of a certificate's lifetime... */
export const RENEW_AT_FRACTION = 0.5;

/** ...plus or minus this fraction of the lifetime, drawn at random. */
export const RENEW_JITTER_FRACTION = 0.1;

/**
 * When to renew a certificate valid from `notBeforeMs` to `notAfterMs`, in
 * epoch milliseconds: at 40% to 60% of its lifetime, linear in `random()`
 * (0 gives 40%, 1 gives 60%). The jitter spreads a fleet's renewals, which
 * otherwise bunch up after a mass restart.
 */
export function renewAtMs(notBeforeMs: number, notAfterMs: number, random: () => number): number {
  const lifetimeMs = Math.max(0, notAfterMs - notBeforeMs);
  const fraction = RENEW_AT_FRACTION + (unitInterval(random()) * 2 - 1) * RENEW_JITTER_FRACTION;
  return notBeforeMs + Math.round(lifetimeMs * fraction);
}
