import type { Issuer } from '../x509/index.js';
import { AuthorityError } from './authority-error.js';

/** Shortest certificate lifetime the CA hands out by default, whatever is asked. */
export const MIN_TTL_SECONDS = 60;

/** How the CA decides lifetimes. */
export interface AuthorityOptions {
  trustDomain: string;
  defaultTtlSeconds: number;
  maxTtlSeconds: number;
  /** Shortest lifetime handed out; MIN_TTL_SECONDS unless set (tests of rotation lower it). */
  minTtlSeconds?: number;
}

/** What a leaf's lifetime is decided from. */
export interface LifetimeLimits {
  options: AuthorityOptions;
  /** The mesh policy's `maxCertTtl` in seconds, when it sets one. */
  meshMaxTtlSeconds: number | undefined;
  /** When the signing intermediate expires. */
  issuerNotAfter: Date;
  now: Date;
}

/**
 * The lifetime in seconds a leaf gets for `requestedSeconds` (0 asks for the
 * default): at least the shortest lifetime, at most the CA's and the mesh
 * policy's longest, and never past the intermediate's expiry unless that
 * is closer than the shortest lifetime. Throws AuthorityError TTL_INVALID
 * for a negative or non-finite request.
 */
export function clampTtl(requestedSeconds: number, limits: LifetimeLimits): number {
  if (!Number.isFinite(requestedSeconds) || requestedSeconds < 0) {
    throw new AuthorityError(
      'TTL_INVALID',
      `requested lifetime must be >= 0 seconds, got ${requestedSeconds}`,
    );
  }
  const { options } = limits;
  const minSeconds = options.minTtlSeconds ?? MIN_TTL_SECONDS;
  const asked = requestedSeconds === 0 ? options.defaultTtlSeconds : requestedSeconds;
  // The mesh policy may only shorten the CA's own limit; it is never below
  // the shortest lifetime (setMeshPolicy refuses that).
  const maxSeconds = Math.min(
    options.maxTtlSeconds,
    limits.meshMaxTtlSeconds ?? Number.POSITIVE_INFINITY,
  );
  const clamped = Math.min(Math.max(asked, minSeconds), maxSeconds);
  // A leaf must not outlive the intermediate that signs it.
  const untilIssuerExpiry = Math.floor(
    (limits.issuerNotAfter.getTime() - limits.now.getTime()) / 1000,
  );
  return Math.max(minSeconds, Math.min(clamped, untilIssuerExpiry));
}

/** The issuer certificate's notAfter as a Date (Node 20 has no `validToDate`). */
export function notAfterOf(issuer: Issuer): Date {
  return new Date(issuer.cert.validTo);
}
