import fs from 'node:fs/promises';

import {
  createLocalJWKSet,
  createRemoteJWKSet,
  decodeProtectedHeader,
  errors,
  jwtVerify,
  type JSONWebKeySet,
  type JWTPayload,
  type JWTVerifyGetKey,
} from 'jose';

import { PalisadeError, errorMessage } from '../errors.js';
import { parseTrustDomain, workloadId } from '../spiffe-id.js';
import { isJwksDiscovery, KubernetesJwks, type KubernetesJwksOptions } from './oidc-discovery.js';

/** The audience a projected service-account token must carry to reach the CA. */
export const SA_TOKEN_AUDIENCE = 'palisade-ca';

/** Signature algorithms accepted; never `none` and never a shared-secret HMAC. */
export const SA_TOKEN_ALGORITHMS: readonly string[] = [
  'RS256',
  'RS384',
  'RS512',
  'ES256',
  'ES384',
  'PS256',
];

/** Largest token accepted, in bytes; real service-account tokens are about 1 KiB. */
export const MAX_SA_TOKEN_BYTES = 8 * 1024;

/** Clock skew tolerated on `exp` and `nbf` unless configured, in seconds. */
export const DEFAULT_CLOCK_SKEW_SECONDS = 30;

const JWKS_FETCH_TIMEOUT_MS = 5000;
const JWKS_REFETCH_COOLDOWN_MS = 30_000;
const JWKS_CACHE_MAX_AGE_MS = 10 * 60_000;
const SUBJECT = /^system:serviceaccount:([^:]+):([^:]+)$/;

/** The outcome of checking a proof of identity: the SPIFFE ID it entitles, or why not. */
export type AuthnResult =
  | { ok: true; spiffeId: string; detail: Record<string, string> }
  | { ok: false; code: string; reason: string };

/** Settings of a SaTokenVerifier. */
export interface SaTokenVerifierOptions {
  /**
   * The issuer's keys: a JWKS file path, an http(s) URL serving one, or
   * `kubernetes` (or `oidc`) to discover them from the API server.
   */
  jwks: string;
  /**
   * The `iss` every token must carry, e.g. `https://kubernetes.default.svc.cluster.local`.
   * Optional with discovery, which then takes it from the discovery document.
   */
  issuer?: string;
  /** Where and how discovery reaches the API server; in-cluster defaults. */
  discovery?: KubernetesJwksOptions;
  /** The audience tokens must include; default `palisade-ca`. */
  audience?: string;
  /** Trust domain of the SPIFFE IDs handed out. */
  trustDomain: string;
  /** Tolerated clock skew on `exp` and `nbf`; default 30. */
  clockSkewSeconds?: number;
  /** Clock, injectable for tests. */
  now?: () => Date;
}

/**
 * Verifies Kubernetes projected service-account tokens and maps each to
 * `spiffe://<td>/ns/<namespace>/sa/<name>`. Keys come from a JWKS file,
 * re-read when its mtime or size changes (the previous keys stay in use if
 * a re-read fails), from a JWKS URL, fetched with a 5 s timeout, cached
 * 10 minutes and refetched when a token names an unknown key, or by OIDC
 * discovery on the Kubernetes API server (see KubernetesJwks).
 */
export class SaTokenVerifier {
  readonly #issuer: () => Promise<string>;
  readonly #audience: string;
  readonly #trustDomain: string;
  readonly #clockSkewSeconds: number;
  readonly #now: () => Date;
  readonly #keys: () => Promise<JWTVerifyGetKey>;

  /** Validates every option at once; throws CONFIG_INVALID naming each bad one. */
  constructor(opts: SaTokenVerifierOptions) {
    const problems: string[] = [];
    if (typeof opts.jwks !== 'string' || opts.jwks.trim() === '') problems.push('jwks is empty');
    const isDiscovery = typeof opts.jwks === 'string' && isJwksDiscovery(opts.jwks);
    // Discovery may take the issuer from the API server; a file or URL cannot.
    const hasIssuer = typeof opts.issuer === 'string' && opts.issuer !== '';
    if (!hasIssuer && !(opts.issuer === undefined && isDiscovery)) {
      problems.push('issuer is empty');
    }
    const audience = opts.audience ?? SA_TOKEN_AUDIENCE;
    if (typeof audience !== 'string' || audience === '') problems.push('audience is empty');
    try {
      parseTrustDomain(opts.trustDomain);
    } catch (err) {
      problems.push(`trustDomain ${JSON.stringify(opts.trustDomain)}: ${errorMessage(err)}`);
    }
    const skew = opts.clockSkewSeconds ?? DEFAULT_CLOCK_SKEW_SECONDS;
    if (!Number.isFinite(skew) || skew < 0) {
      problems.push(`clockSkewSeconds must be zero or more, got ${skew}`);
    }
    let keys: (() => Promise<JWTVerifyGetKey>) | undefined;
    let issuer: (() => Promise<string>) | undefined;
    if (problems.length === 0) {
      try {
        if (isDiscovery) {
          const discovered = new KubernetesJwks(opts.discovery);
          keys = () => discovered.keys();
          issuer = opts.issuer ? constant(opts.issuer) : () => discovered.issuer();
        } else {
          keys = keySource(opts.jwks);
          issuer = constant(opts.issuer as string);
        }
      } catch (err) {
        problems.push(`jwks ${JSON.stringify(opts.jwks)}: ${errorMessage(err)}`);
      }
    }
    if (problems.length > 0 || !keys || !issuer) {
      throw new PalisadeError(
        'CONFIG_INVALID',
        `service-account token verifier: ${problems.join('; ')}`,
      );
    }

    this.#issuer = issuer;
    this.#audience = audience;
    this.#trustDomain = opts.trustDomain;
    this.#clockSkewSeconds = skew;
    this.#now = opts.now ?? (() => new Date());
    this.#keys = keys;
  }

  /**
   * Checks a token's form, algorithm, signature, issuer, audience, expiry and
   * subject. Never throws for a bad token: every failure is a result with a
   * stable code (TOKEN_MALFORMED, TOKEN_ALG, TOKEN_SIGNATURE, TOKEN_EXPIRED,
   * TOKEN_NOT_YET_VALID, TOKEN_AUDIENCE, TOKEN_ISSUER, TOKEN_SUBJECT,
   * JWKS_UNAVAILABLE).
   */
  async verify(token: string): Promise<AuthnResult> {
    if (typeof token !== 'string' || token === '') return fail('TOKEN_MALFORMED', 'token is empty');
    if (Buffer.byteLength(token, 'utf8') > MAX_SA_TOKEN_BYTES) {
      return fail('TOKEN_MALFORMED', `token is larger than ${MAX_SA_TOKEN_BYTES} bytes`);
    }
    if (token.split('.').length !== 3) {
      return fail('TOKEN_MALFORMED', 'token is not a compact signed JWT');
    }

    // Refuse the algorithm before touching keys: `none` and HMAC tokens must
    // never reach a verifier that could treat a public key as a secret.
    let alg: unknown;
    try {
      alg = decodeProtectedHeader(token).alg;
    } catch (err) {
      return fail('TOKEN_MALFORMED', `token header is unreadable: ${errorMessage(err)}`);
    }
    if (typeof alg !== 'string' || !SA_TOKEN_ALGORITHMS.includes(alg)) {
      return fail('TOKEN_ALG', `token algorithm ${JSON.stringify(alg)} is not accepted`);
    }

    let keys: JWTVerifyGetKey;
    let issuer: string;
    try {
      keys = await this.#keys();
      issuer = await this.#issuer();
    } catch (err) {
      return fail('JWKS_UNAVAILABLE', `issuer keys are unavailable: ${errorMessage(err)}`);
    }

    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, keys, {
        algorithms: [...SA_TOKEN_ALGORITHMS],
        issuer,
        audience: this.#audience,
        clockTolerance: this.#clockSkewSeconds,
        currentDate: this.#now(),
        requiredClaims: ['exp'],
      }));
    } catch (err) {
      return classify(err);
    }
    return this.#identify(payload, issuer);
  }

  #identify(payload: JWTPayload, issuer: string): AuthnResult {
    const match = typeof payload.sub === 'string' ? SUBJECT.exec(payload.sub) : null;
    if (!match) return fail('TOKEN_SUBJECT', 'subject is not a Kubernetes service account');
    const namespace = match[1] as string;
    const serviceAccount = match[2] as string;

    // The kubernetes.io claim is what the API server bound the token to; a
    // subject that disagrees with it is a forged or confused token.
    const k8s = payload['kubernetes.io'] as
      | { namespace?: unknown; serviceaccount?: { name?: unknown }; pod?: { name?: unknown } }
      | undefined;
    if (k8s !== undefined) {
      if (
        typeof k8s !== 'object' ||
        k8s === null ||
        k8s.namespace !== namespace ||
        k8s.serviceaccount?.name !== serviceAccount
      ) {
        return fail('TOKEN_SUBJECT', 'subject disagrees with the kubernetes.io claim');
      }
    }

    let spiffeId: string;
    try {
      spiffeId = workloadId(this.#trustDomain, namespace, serviceAccount);
    } catch (err) {
      return fail('TOKEN_SUBJECT', `subject does not name a workload: ${errorMessage(err)}`);
    }
    const detail: Record<string, string> = {
      namespace,
      service_account: serviceAccount,
      issuer,
      expires_at: new Date((payload.exp as number) * 1000).toISOString(),
    };
    if (typeof k8s?.pod?.name === 'string') detail.pod = k8s.pod.name;
    return { ok: true, spiffeId, detail };
  }
}

function keySource(jwks: string): () => Promise<JWTVerifyGetKey> {
  if (/^https?:\/\//i.test(jwks)) {
    const remote = createRemoteJWKSet(new URL(jwks), {
      timeoutDuration: JWKS_FETCH_TIMEOUT_MS,
      cooldownDuration: JWKS_REFETCH_COOLDOWN_MS,
      cacheMaxAge: JWKS_CACHE_MAX_AGE_MS,
    });
    return async () => remote;
  }
  return jwksFile(jwks);
}

function constant(value: string): () => Promise<string> {
  return async () => value;
}

function jwksFile(path: string): () => Promise<JWTVerifyGetKey> {
  let loaded: { stamp: string; keys: JWTVerifyGetKey } | undefined;
  return async () => {
    try {
      const stat = await fs.stat(path);
      const stamp = `${stat.mtimeMs}:${stat.size}:${stat.ino}`;
      if (loaded?.stamp === stamp) return loaded.keys;
      const parsed = JSON.parse(await fs.readFile(path, 'utf8')) as JSONWebKeySet;
      loaded = { stamp, keys: createLocalJWKSet(parsed) };
      return loaded.keys;
    } catch (err) {
      // A half-written or briefly missing file during rotation must not lock
      // every workload out: keep the last good keys and retry on the next call.
      if (loaded) return loaded.keys;
      throw err;
    }
  };
}

function classify(err: unknown): AuthnResult {
  const text = errorMessage(err);
  if (err instanceof errors.JWTExpired) return fail('TOKEN_EXPIRED', 'token has expired');
  if (err instanceof errors.JWTClaimValidationFailed) {
    switch (err.claim) {
      case 'nbf':
        return fail('TOKEN_NOT_YET_VALID', 'token is not valid yet');
      case 'aud':
        return fail('TOKEN_AUDIENCE', 'token audience does not include the CA');
      case 'iss':
        return fail('TOKEN_ISSUER', 'token issuer is not the configured one');
      default:
        return fail('TOKEN_MALFORMED', `token claim ${err.claim} is invalid: ${err.reason}`);
    }
  }
  if (err instanceof errors.JOSEAlgNotAllowed) return fail('TOKEN_ALG', text);
  if (
    err instanceof errors.JWSSignatureVerificationFailed ||
    err instanceof errors.JWKSNoMatchingKey ||
    err instanceof errors.JWKSMultipleMatchingKeys
  ) {
    return fail('TOKEN_SIGNATURE', 'token signature does not verify with the issuer keys');
  }
  if (
    err instanceof errors.JWSInvalid ||
    err instanceof errors.JWTInvalid ||
    err instanceof errors.JOSENotSupported
  ) {
    return fail('TOKEN_MALFORMED', text);
  }
  // What is left comes from loading keys: a fetch timeout or failure, a
  // response that is not a JWKS, or a key the set holds that cannot be used.
  return fail('JWKS_UNAVAILABLE', `issuer keys are unavailable: ${text}`);
}

function fail(code: string, reason: string): AuthnResult {
  return { ok: false, code, reason };
}
