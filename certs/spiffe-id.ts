import { PalisadeError } from './errors.js';

/** Longest SPIFFE ID the spec allows, in bytes of its URI form. */
export const MAX_SPIFFE_ID_BYTES = 2048;

/** Longest trust domain name the spec allows, in characters. */
export const MAX_TRUST_DOMAIN_LENGTH = 255;

/** Trust domain used when an operator names none. */
export const DEFAULT_TRUST_DOMAIN = 'cluster.local';

const SCHEME = 'spiffe://';
const TRUST_DOMAIN_CHARS = /^[a-z0-9._-]+$/;
const PATH_SEGMENT_CHARS = /^[A-Za-z0-9._-]+$/;
const K8S_NAME = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

/** A parsed, valid SPIFFE ID. */
export interface SpiffeId {
  /** The whole ID, `spiffe://<trust-domain><path>`. */
  readonly uri: string;
  readonly trustDomain: string;
  /** The path, starting with `/`, or the empty string for a trust domain ID. */
  readonly path: string;
}

/** Raised when a string is not a valid SPIFFE ID or trust domain. */
export class SpiffeIdError extends PalisadeError {
  constructor(message: string) {
    super('SPIFFE_ID_INVALID', message);
    this.name = 'SpiffeIdError';
  }
}

/**
 * Parses a SPIFFE ID by the rules of the SPIFFE ID specification: scheme
 * `spiffe`, a lowercase trust domain of `[a-z0-9._-]`, no port, user info,
 * query or fragment, path segments of `[A-Za-z0-9._-]` that are neither empty,
 * `.` nor `..`, and at most 2048 bytes. Throws SpiffeIdError naming the rule
 * broken.
 */
export function parseSpiffeId(input: string): SpiffeId {
  if (typeof input !== 'string' || input.length === 0) {
    throw new SpiffeIdError('SPIFFE ID is empty');
  }
  if (Buffer.byteLength(input, 'utf8') > MAX_SPIFFE_ID_BYTES) {
    throw new SpiffeIdError(`SPIFFE ID is longer than ${MAX_SPIFFE_ID_BYTES} bytes`);
  }
  if (!input.toLowerCase().startsWith(SCHEME)) {
    throw new SpiffeIdError(`SPIFFE ID must start with ${SCHEME}: ${quote(input)}`);
  }
  if (!input.startsWith(SCHEME)) {
    throw new SpiffeIdError(`SPIFFE ID scheme must be lowercase: ${quote(input)}`);
  }
  if (input.includes('?')) throw new SpiffeIdError(`SPIFFE ID has a query: ${quote(input)}`);
  if (input.includes('#')) throw new SpiffeIdError(`SPIFFE ID has a fragment: ${quote(input)}`);

  const rest = input.slice(SCHEME.length);
  const slash = rest.indexOf('/');
  const trustDomain = slash === -1 ? rest : rest.slice(0, slash);
  const path = slash === -1 ? '' : rest.slice(slash);
  checkTrustDomain(trustDomain, input);
  if (path !== '') checkPath(path, input);
  return { uri: input, trustDomain, path };
}

/** Returns whether `input` is a valid SPIFFE ID. */
export function isSpiffeId(input: string): boolean {
  try {
    parseSpiffeId(input);
    return true;
  } catch {
    // Invalid input is the answer here, not a failure.
    return false;
  }
}

/** Validates a bare trust domain name; throws SpiffeIdError when it is not one. */
export function parseTrustDomain(input: string): string {
  checkTrustDomain(input, input);
  return input;
}

/** Builds `spiffe://<td>/ns/<namespace>/sa/<serviceAccount>`, validating each part. */
export function workloadId(trustDomain: string, namespace: string, serviceAccount: string): string {
  for (const [what, value] of [
    ['namespace', namespace],
    ['service account', serviceAccount],
  ] as const) {
    if (!K8S_NAME.test(value) || value.length > 253) {
      throw new SpiffeIdError(`${what} is not a Kubernetes name: ${quote(value)}`);
    }
  }
  return parseSpiffeId(`${SCHEME}${trustDomain}/ns/${namespace}/sa/${serviceAccount}`).uri;
}

/** The SPIFFE ID the CA serves TLS with. */
export function caId(trustDomain: string): string {
  return workloadId(trustDomain, 'palisade-system', 'palisade-ca');
}

/** The SPIFFE ID of the operator's admin certificate. */
export function adminId(trustDomain: string): string {
  return `${SCHEME}${parseTrustDomain(trustDomain)}/palisade/admin`;
}

function checkTrustDomain(td: string, whole: string): void {
  if (td.length === 0) throw new SpiffeIdError(`SPIFFE ID has no trust domain: ${quote(whole)}`);
  if (td.includes('@')) throw new SpiffeIdError(`SPIFFE ID has user info: ${quote(whole)}`);
  if (td.includes(':')) throw new SpiffeIdError(`SPIFFE ID has a port: ${quote(whole)}`);
  if (td.length > MAX_TRUST_DOMAIN_LENGTH) {
    throw new SpiffeIdError(`trust domain is longer than ${MAX_TRUST_DOMAIN_LENGTH} characters`);
  }
  if (!TRUST_DOMAIN_CHARS.test(td)) {
    throw new SpiffeIdError(
      `trust domain may hold only lowercase letters, digits, '.', '-' and '_': ${quote(td)}`,
    );
  }
}

function checkPath(path: string, whole: string): void {
  for (const segment of path.slice(1).split('/')) {
    if (segment === '') {
      throw new SpiffeIdError(`SPIFFE ID path has an empty segment: ${quote(whole)}`);
    }
    if (segment === '.' || segment === '..') {
      throw new SpiffeIdError(`SPIFFE ID path has a '${segment}' segment: ${quote(whole)}`);
    }
    if (!PATH_SEGMENT_CHARS.test(segment)) {
      throw new SpiffeIdError(
        `SPIFFE ID path segment may hold only letters, digits, '.', '-' and '_': ${quote(whole)}`,
      );
    }
  }
}

function quote(value: string): string {
  return JSON.stringify(value.length > 120 ? `${value.slice(0, 117)}...` : value);
}
