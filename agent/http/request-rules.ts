import type { HttpRule, HttpSection } from '../policy/index.js';

/** Why a request was refused; stable, used in answers, logs and metric labels. */
export type HttpDenyReason =
  | 'bad-path'
  | 'no-matching-rule'
  | 'token-missing'
  | TokenFailureReason
  | 'missing-scope'
  | 'client-not-allowed';

/** Why a bearer token was not accepted; stable, a subset of HttpDenyReason. */
export type TokenFailureReason =
  | 'token-malformed'
  | 'alg-not-allowed'
  | 'token-expired'
  | 'token-not-yet-valid'
  | 'wrong-issuer'
  | 'wrong-audience'
  | 'unknown-key'
  | 'bad-signature'
  | 'jwks-unavailable';

/** The facts of a verified access token that rules and forwarded headers use. */
export interface TokenClaims {
  readonly sub: string | undefined;
  /** `client_id`, or `azp` when the issuer names the client that way. */
  readonly clientId: string | undefined;
  /** The union of the space-delimited `scope` claim and the `scp` claim. */
  readonly scopes: readonly string[];
}

/** What a request is matched on: the method, the request target and the mTLS peer. */
export interface RequestFacts {
  readonly method: string;
  /** The request target as received (`/orders?id=1`); the query is not matched. */
  readonly target: string;
  /** The verified SPIFFE ID of the peer; undefined for plaintext (permissive mode). */
  readonly peerId: string | undefined;
}

/** Which rule applies to a request, or why none may. */
export type RuleMatch =
  | { ok: true; rule: HttpRule; path: string }
  | { ok: false; reason: 'bad-path' | 'no-matching-rule'; path: string };

/** A rule's verdict on the token the request carried. */
export type RuleAuthorization =
  | { ok: true }
  | { ok: false; reason: 'missing-scope'; missingScope: string }
  | { ok: false; reason: 'client-not-allowed' };

// Percent-encoded `.`, `/` and `\` let a path look different to the agent
// and to an application that decodes before routing; such paths are refused.
const ENCODED_SEPARATOR = /%(2e|2f|5c)/i;

/**
 * Returns the path of a request target, without its query, or undefined when
 * the target is not an origin-form path the rules can judge safely: not
 * starting with `/`, holding a backslash, an encoded dot, slash or backslash,
 * or a `.` or `..` segment (also as `..;x`), which an application might
 * resolve to a path no rule was written for.
 */
export function requestPath(target: string): string | undefined {
  const query = target.search(/[?#]/);
  const path = query === -1 ? target : target.slice(0, query);
  if (!path.startsWith('/') || path.includes('\\') || ENCODED_SEPARATOR.test(path)) {
    return undefined;
  }
  for (const segment of path.split('/')) {
    const name = segment.split(';', 1)[0];
    if (name === '.' || name === '..') return undefined;
  }
  return path;
}

/** Returns whether `rule` applies to a request for `path` with `method` from `peerId`. */
export function ruleMatches(
  rule: HttpRule,
  method: string,
  path: string,
  peerId: string | undefined,
): boolean {
  if (rule.methods !== undefined && !rule.methods.includes(method)) return false;
  if (!pathMatches(rule, path)) return false;
  if (rule.peers === undefined) return true;
  return peerId !== undefined && rule.peers.some((p) => p.matches(peerId));
}

/**
 * Finds the first rule of `section` that applies to the request: by method,
 * path (exact, or whole-segment prefix) and peer identity. No match, or a
 * path that cannot be judged safely, is a refusal. Pure; O(rules).
 */
export function matchRule(section: HttpSection, request: RequestFacts): RuleMatch {
  const path = requestPath(request.target);
  if (path === undefined) return { ok: false, reason: 'bad-path', path: request.target };

  const method = request.method.toUpperCase();
  for (const rule of section.rules) {
    if (ruleMatches(rule, method, path, request.peerId)) return { ok: true, rule, path };
  }
  return { ok: false, reason: 'no-matching-rule', path };
}

/**
 * Checks a verified token against what `rule` requires: every scope, and one
 * of the clients when the rule names any. The first missing scope is named.
 */
export function authorizeClaims(rule: HttpRule, claims: TokenClaims): RuleAuthorization {
  for (const scope of rule.scopes) {
    if (!claims.scopes.includes(scope))
      return { ok: false, reason: 'missing-scope', missingScope: scope };
  }
  if (rule.clients !== undefined) {
    if (claims.clientId === undefined || !rule.clients.includes(claims.clientId)) {
      return { ok: false, reason: 'client-not-allowed' };
    }
  }
  return { ok: true };
}

/**
 * Reads the claims rules use from a verified JWT payload: `sub`, `client_id`
 * (or `azp`), and scopes from a space-delimited `scope` (RFC 8693 4.2) and/or
 * an `scp` list or string. Claims of the wrong type are ignored.
 */
export function readClaims(payload: Record<string, unknown>): TokenClaims {
  const scopes = new Set<string>();
  const addScopes = (value: unknown): void => {
    if (typeof value === 'string') {
      for (const s of value.split(' ')) if (s !== '') scopes.add(s);
    } else if (Array.isArray(value)) {
      for (const s of value) if (typeof s === 'string' && s !== '') scopes.add(s);
    }
  };
  addScopes(payload['scope']);
  addScopes(payload['scp']);
  const text = (value: unknown) => (typeof value === 'string' && value !== '' ? value : undefined);
  return Object.freeze({
    sub: text(payload['sub']),
    clientId: text(payload['client_id']) ?? text(payload['azp']),
    scopes: Object.freeze([...scopes]),
  });
}

/**
 * Reads the bearer token of an `Authorization` header value (RFC 6750 2.1,
 * scheme case-insensitive). Returns undefined when there is no header and
 * null when there is one that is not a bearer token.
 */
export function bearerToken(authorization: string | undefined): string | undefined | null {
  if (authorization === undefined) return undefined;
  const match = /^bearer +([A-Za-z0-9\-._~+/]+=*) *$/i.exec(authorization);
  return match ? (match[1] as string) : null;
}

function pathMatches(rule: HttpRule, path: string): boolean {
  if (path === rule.path) return true;
  if (!rule.prefix) return false;
  // Whole segments only: /orders covers /orders/7, never /ordersecret.
  const base = rule.path.endsWith('/') ? rule.path : `${rule.path}/`;
  return path.startsWith(base);
}
