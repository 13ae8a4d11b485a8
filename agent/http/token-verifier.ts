import fs from 'node:fs/promises';

import type * as Jose from 'jose';
import type { JSONWebKeySet, JWTVerifyGetKey } from 'jose';

import { errorMessage } from '../../certs/errors.js';
import type { JwtSettings } from '../policy/index.js';
import { readClaims, type TokenClaims, type TokenFailureReason } from './request-rules.js';

/**
 * Signature algorithms accepted on access tokens: asymmetric only. `none` and
 * the HMAC family are refused, so a public key can never serve as a secret.
 */
export const ACCESS_TOKEN_ALGORITHMS: readonly string[] = Object.freeze([
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
  'Ed25519',
]);

/** How long a JWKS fetch may take before the keys count as unavailable, in milliseconds. */
export const DEFAULT_JWKS_FETCH_TIMEOUT_MS = 5_000;

/** Least time between two reloads caused by unknown key ids, in milliseconds. */
export const DEFAULT_JWKS_MIN_REFRESH_INTERVAL_MS = 30_000;

/** Least time between two load attempts after one failed, in milliseconds. */
export const DEFAULT_JWKS_RETRY_INTERVAL_MS = 1_000;

/** How long loaded keys are used before they are reloaded, in milliseconds. */
export const DEFAULT_JWKS_MAX_AGE_MS = 5 * 60_000;

/** The outcome of checking one bearer token. */
export type TokenResult =
  { ok: true; claims: TokenClaims } | { ok: false; reason: TokenFailureReason; detail: string };

/** What a TokenVerifier needs: the policy's jwt settings plus injectable clock and limits. */
export interface TokenVerifierOptions {
  jwt: JwtSettings;
  /** The clock used for exp, nbf and refresh limits; default `new Date()`. */
  now?: () => Date;
  fetchTimeoutMs?: number;
  minRefreshIntervalMs?: number;
  retryIntervalMs?: number;
  maxAgeMs?: number;
}

/** The JOSE library, as its module namespace. */
type JoseModule = typeof Jose;

// The one load of the JOSE library this process makes; see loadJose.
let joseLoading: Promise<JoseModule> | undefined;

/** Most verified tokens remembered; the cache is emptied when it is full. */
const MAX_VERIFIED_TOKENS = 4096;

/** A token that verified, with the keys it verified against and its time window. */
interface VerifiedToken {
  readonly claims: TokenClaims;
  readonly keys: LoadedKeys;
  readonly expMs: number;
  readonly nbfMs: number;
}

interface LoadedKeys {
  readonly keys: JWTVerifyGetKey;
  readonly loadedAtMs: number;
}

/**
 * Verifies OAuth 2.0 access tokens (JWT) against one issuer: the algorithm
 * first (asymmetric only), then the signature with the issuer's JWKS (a file
 * or an http(s) URL), then `iss`, `aud`, `exp` (required) and `nbf` with the
 * configured clock skew. Keys are cached; an unknown `kid` reloads them at
 * most once per minimum refresh interval, and a failed reload keeps the last
 * good keys. With no keys ever loaded every token fails closed with
 * `jwks-unavailable`. Never throws from `verify`. The JOSE library is loaded
 * when the first verifier is built, so an agent without jwt settings never
 * holds it in memory.
 */
export class TokenVerifier {
  readonly jwt: JwtSettings;
  readonly #now: () => Date;
  readonly #fetchTimeoutMs: number;
  readonly #minRefreshIntervalMs: number;
  readonly #retryIntervalMs: number;
  readonly #maxAgeMs: number;
  #loaded: LoadedKeys | undefined;
  #lastAttemptMs = Number.NEGATIVE_INFINITY;
  #lastKidRefreshMs = Number.NEGATIVE_INFINITY;
  #lastError = '';
  #loading: Promise<void> | undefined;
  readonly #verified = new Map<string, VerifiedToken>();
  readonly #jose: Promise<JoseModule>;

  constructor(options: TokenVerifierOptions) {
    this.jwt = options.jwt;
    this.#now = options.now ?? (() => new Date());
    this.#fetchTimeoutMs = options.fetchTimeoutMs ?? DEFAULT_JWKS_FETCH_TIMEOUT_MS;
    this.#minRefreshIntervalMs =
      options.minRefreshIntervalMs ?? DEFAULT_JWKS_MIN_REFRESH_INTERVAL_MS;
    this.#retryIntervalMs = options.retryIntervalMs ?? DEFAULT_JWKS_RETRY_INTERVAL_MS;
    this.#maxAgeMs = options.maxAgeMs ?? DEFAULT_JWKS_MAX_AGE_MS;
    this.#jose = loadJose();
  }

  /** Checks one compact JWT; the answer names the first thing wrong with it. */
  async verify(token: string): Promise<TokenResult> {
    let jose: JoseModule;
    try {
      jose = await this.#jose;
    } catch (err) {
      return fail('jwks-unavailable', `token checks are unavailable: ${errorMessage(err)}`);
    }

    // Refuse the algorithm before touching keys: `none` and HMAC tokens must
    // never reach a verifier that could treat a public key as a secret.
    let alg: unknown;
    try {
      alg = jose.decodeProtectedHeader(token).alg;
    } catch (err) {
      return fail('token-malformed', `token header is unreadable: ${errorMessage(err)}`);
    }
    if (typeof alg !== 'string' || !ACCESS_TOKEN_ALGORITHMS.includes(alg)) {
      return fail('alg-not-allowed', `token algorithm ${JSON.stringify(alg)} is not accepted`);
    }

    const nowMs = this.#now().getTime();
    const isStale = this.#loaded === undefined || nowMs - this.#loaded.loadedAtMs >= this.#maxAgeMs;
    // A failed load is retried at most once per retry interval, so an issuer
    // that is down is not hit by every request.
    if (isStale && nowMs - this.#lastAttemptMs >= this.#retryIntervalMs) {
      await this.#reload(nowMs);
    }
    if (this.#loaded === undefined) {
      return fail('jwks-unavailable', `issuer keys are unavailable: ${this.#lastError}`);
    }

    // A token already verified against these very keys stands while its
    // time window holds: a signature check per request would cost more than
    // the rest of the request (ES256 verify on every keep-alive request).
    const loaded = this.#loaded;
    const known = this.#verified.get(token);
    const skewMs = this.jwt.clockSkewSeconds * 1000;
    if (
      known &&
      known.keys === loaded &&
      nowMs < known.expMs + skewMs &&
      nowMs >= known.nbfMs - skewMs
    ) {
      return { ok: true, claims: known.claims };
    }

    let result = await this.#check(jose, token, loaded.keys);
    if (!result.ok && result.reason === 'unknown-key' && this.#mayRefresh(nowMs)) {
      // Issuers publish a new key before signing with it; one reload finds it.
      // Tokens with made-up key ids cause at most one reload per interval.
      this.#lastKidRefreshMs = nowMs;
      await this.#reload(nowMs);
      result = await this.#check(jose, token, this.#loaded.keys);
    }
    if (result.ok) this.#remember(jose, token, result.claims);
    return result;
  }

  #remember(jose: JoseModule, token: string, claims: TokenClaims): void {
    const payload = jose.decodeJwt(token);
    if (typeof payload.exp !== 'number' || !this.#loaded) return;
    if (this.#verified.size >= MAX_VERIFIED_TOKENS) this.#verified.clear();
    this.#verified.set(token, {
      claims,
      keys: this.#loaded,
      expMs: payload.exp * 1000,
      nbfMs: typeof payload.nbf === 'number' ? payload.nbf * 1000 : Number.NEGATIVE_INFINITY,
    });
  }

  /** Loads the keys now (e.g. at start-up); resolves whether keys are available afterwards. */
  async refresh(): Promise<boolean> {
    await this.#reload(this.#now().getTime());
    return this.#loaded !== undefined;
  }

  #mayRefresh(nowMs: number): boolean {
    return nowMs - this.#lastKidRefreshMs >= this.#minRefreshIntervalMs;
  }

  // One load at a time: concurrent requests with an unknown kid share it.
  async #reload(nowMs: number): Promise<void> {
    if (this.#loading === undefined) {
      this.#lastAttemptMs = nowMs;
      this.#loading = this.#load(nowMs).finally(() => (this.#loading = undefined));
    }
    await this.#loading;
  }

  async #load(nowMs: number): Promise<void> {
    try {
      const { createLocalJWKSet } = await this.#jose;
      const set = await this.#readKeySet();
      if (!Array.isArray((set as { keys?: unknown }).keys))
        throw new Error('not a JWKS: no keys list');
      this.#loaded = { keys: createLocalJWKSet(set), loadedAtMs: nowMs };
    } catch (err) {
      // The last good keys stay: an issuer briefly down must not lock out
      // callers whose tokens were signed with keys already known.
      this.#lastError = errorMessage(err);
    }
  }

  async #readKeySet(): Promise<JSONWebKeySet> {
    const source = this.jwt.jwks;
    if (!/^https?:\/\//i.test(source)) {
      return JSON.parse(await fs.readFile(source, 'utf8')) as JSONWebKeySet;
    }
    const res = await fetch(source, {
      signal: AbortSignal.timeout(this.#fetchTimeoutMs),
      headers: { accept: 'application/json' },
    });
    if (!res.ok) throw new Error(`JWKS endpoint answered ${res.status}`);
    return (await res.json()) as JSONWebKeySet;
  }

  async #check(jose: JoseModule, token: string, keys: JWTVerifyGetKey): Promise<TokenResult> {
    try {
      const { payload } = await jose.jwtVerify(token, keys, {
        algorithms: [...ACCESS_TOKEN_ALGORITHMS],
        issuer: this.jwt.issuer,
        audience: [...this.jwt.audience],
        clockTolerance: this.jwt.clockSkewSeconds,
        currentDate: this.#now(),
        requiredClaims: ['exp'],
      });
      return { ok: true, claims: readClaims(payload as Record<string, unknown>) };
    } catch (err) {
      return classify(jose.errors, err);
    }
  }
}

/** Loads the JOSE library once per process; every verifier shares the one load. */
function loadJose(): Promise<JoseModule> {
  if (joseLoading === undefined) {
    joseLoading = import('jose');
    // A failed load is reported by each `verify` (fail closed); this keeps it
    // from also counting as an unhandled rejection before anyone awaits it.
    joseLoading.catch(() => undefined);
  }
  return joseLoading;
}

function classify(errors: JoseModule['errors'], err: unknown): TokenResult {
  if (err instanceof errors.JWTExpired) return fail('token-expired', 'token has expired');
  if (err instanceof errors.JWTClaimValidationFailed) {
    switch (err.claim) {
      case 'nbf':
        return fail('token-not-yet-valid', 'token is not valid yet');
      case 'aud':
        return fail('wrong-audience', 'token audience is not this service');
      case 'iss':
        return fail('wrong-issuer', 'token issuer is not the configured one');
      default:
        return fail('token-malformed', `token claim ${err.claim} is invalid: ${err.reason}`);
    }
  }
  if (err instanceof errors.JOSEAlgNotAllowed) {
    return fail('alg-not-allowed', 'token algorithm is not accepted');
  }
  if (err instanceof errors.JWKSNoMatchingKey) {
    return fail('unknown-key', 'no issuer key matches the token');
  }
  if (
    err instanceof errors.JWSSignatureVerificationFailed ||
    err instanceof errors.JWKSMultipleMatchingKeys
  ) {
    return fail('bad-signature', 'token signature does not verify with the issuer keys');
  }
  return fail('token-malformed', `token is not a valid JWT: ${errorMessage(err)}`);
}

function fail(reason: TokenFailureReason, detail: string): TokenResult {
  return { ok: false, reason, detail };
}
