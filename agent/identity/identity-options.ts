import { PalisadeError, errorMessage } from '../../certs/errors.js';
import { parseHostPort } from '../../certs/host-port.js';
import type { Logger } from '../../certs/log.js';
import { parseSpiffeId, parseTrustDomain } from '../../certs/spiffe-id.js';
import { KEY_TYPES, TrustStore, type KeyType } from '../../certs/x509/index.js';
import { systemClock, type Clock } from './clock.js';
import {
  readServiceAccountToken,
  spiffeIdFromServiceAccountToken,
} from './service-account-token.js';

/**
 * How the agent proves who it is for its first certificate: a projected
 * service-account token file (re-read at every use), or a one-time join token.
 */
export type IdentityProof =
  { kind: 'token-file'; path: string } | { kind: 'join-token'; token: string };

/** Optional metric hooks; the composition root binds them to its registry. */
export interface IdentityMetrics {
  /** One call per signing attempt that ended. */
  rotations: (result: 'ok' | 'error') => void;
  /** The expiry of every new certificate. */
  certExpiry: (notAfter: Date) => void;
  /** The version of every trust state applied. */
  trustVersion: (v: number) => void;
}

/** The identity module's slice of the agent configuration. */
export interface IdentityOptions {
  /** `HOST:PORT` of the CA. */
  caAddr: string;
  /** Roots the CA's serving certificate chains to, PEM. */
  caBundlePem: string;
  trustDomain: string;
  proof: IdentityProof;
  /** The identity to request; derived from the service-account token when absent. */
  spiffeId?: string;
  /** Requested certificate lifetime; the CA clamps it. Absent or 0: the CA's default. */
  certTtlSeconds?: number;
  /** Key type of every key pair made; default ecdsa-p256. */
  keyType?: KeyType;
  clock?: Clock;
  /** Uniform in [0, 1); default Math.random. */
  random?: () => number;
  log: Logger;
  metrics?: IdentityMetrics;
}

/** Options after validation, with defaults filled in and the identity resolved. */
export interface ResolvedIdentityOptions {
  readonly caAddr: string;
  readonly caBundlePem: string;
  readonly trustDomain: string;
  readonly proof: IdentityProof;
  readonly spiffeId: string;
  readonly certTtlSeconds: number;
  readonly keyType: KeyType;
  readonly clock: Clock;
  readonly random: () => number;
  readonly log: Logger;
  readonly metrics: IdentityMetrics | undefined;
}

/** Bad identity options, every problem named at once (CONFIG_INVALID). */
export class IdentityConfigError extends PalisadeError {
  /** One line per bad option, naming it; secrets are never quoted. */
  readonly problems: readonly string[];

  constructor(problems: string[]) {
    super('CONFIG_INVALID', `invalid identity options: ${problems.join('; ')}`);
    this.name = 'IdentityConfigError';
    this.problems = Object.freeze(problems);
  }
}

/**
 * Validates identity options and resolves the SPIFFE ID to request (reading
 * the token file once when the ID must come from its claims). Throws
 * IdentityConfigError (CONFIG_INVALID) listing every problem.
 */
export function resolveIdentityOptions(options: IdentityOptions): ResolvedIdentityOptions {
  const problems: string[] = [];
  const check = (what: string, fn: () => void) => {
    try {
      fn();
    } catch (err) {
      problems.push(`${what}: ${errorMessage(err)}`);
    }
  };

  check(`caAddr=${JSON.stringify(options.caAddr)}`, () => {
    if (parseHostPort(String(options.caAddr ?? '')).port === 0) throw new Error('port 0');
  });
  check('caBundlePem', () => {
    if (new TrustStore([String(options.caBundlePem ?? '')]).rootPems.length === 0) {
      throw new Error('holds no certificate');
    }
  });
  let trustDomain: string | undefined;
  check(`trustDomain=${JSON.stringify(options.trustDomain)}`, () => {
    trustDomain = parseTrustDomain(String(options.trustDomain ?? ''));
  });
  const ttl = options.certTtlSeconds ?? 0;
  if (!Number.isInteger(ttl) || ttl < 0 || ttl > 0xffffffff) {
    problems.push(`certTtlSeconds=${String(ttl)}: must be a whole number of seconds >= 0`);
  }
  const keyType = options.keyType ?? 'ecdsa-p256';
  if (!KEY_TYPES.includes(keyType)) {
    problems.push(`keyType=${JSON.stringify(keyType)}: must be one of ${KEY_TYPES.join(', ')}`);
  }
  if (options.random !== undefined && typeof options.random !== 'function') {
    problems.push('random: must be a function');
  }
  if (typeof options.log?.info !== 'function') problems.push('log: a logger is required');

  const spiffeId = resolveSpiffeId(options, trustDomain, problems);
  if (problems.length > 0) throw new IdentityConfigError(problems);

  return Object.freeze({
    caAddr: options.caAddr,
    caBundlePem: options.caBundlePem,
    trustDomain: trustDomain as string,
    proof: Object.freeze({ ...options.proof }),
    spiffeId: spiffeId as string,
    certTtlSeconds: ttl,
    keyType,
    clock: options.clock ?? systemClock,
    random: options.random ?? Math.random,
    log: options.log,
    metrics: options.metrics,
  });
}

function resolveSpiffeId(
  options: IdentityOptions,
  trustDomain: string | undefined,
  problems: string[],
): string | undefined {
  const proof = options.proof as IdentityProof | undefined;
  if (proof?.kind === 'token-file') {
    if (typeof proof.path !== 'string' || proof.path === '') {
      problems.push('proof.path: the token file path is empty');
    }
  } else if (proof?.kind === 'join-token') {
    // The token value is a secret: name the option, never quote it.
    if (typeof proof.token !== 'string' || proof.token === '') {
      problems.push('proof.token: the join token is empty');
    }
  } else {
    problems.push(`proof.kind: must be 'token-file' or 'join-token'`);
  }

  if (options.spiffeId !== undefined) {
    try {
      const id = parseSpiffeId(options.spiffeId);
      if (trustDomain !== undefined && id.trustDomain !== trustDomain) {
        problems.push(
          `spiffeId=${JSON.stringify(options.spiffeId)}: not in trust domain ${trustDomain}`,
        );
      }
      return id.uri;
    } catch (err) {
      problems.push(`spiffeId=${JSON.stringify(options.spiffeId)}: ${errorMessage(err)}`);
      return undefined;
    }
  }

  if (proof?.kind === 'join-token') {
    problems.push('spiffeId: required with a join token, which carries no identity claims');
    return undefined;
  }
  if (proof?.kind !== 'token-file' || !proof.path || trustDomain === undefined) return undefined;
  try {
    return spiffeIdFromServiceAccountToken(readServiceAccountToken(proof.path), trustDomain);
  } catch (err) {
    problems.push(`proof.path=${JSON.stringify(proof.path)}: ${errorMessage(err)}`);
    return undefined;
  }
}
