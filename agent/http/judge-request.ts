import type { HttpRule, HttpSection } from '../policy/index.js';
import {
  authorizeClaims,
  bearerToken,
  matchRule,
  type HttpDenyReason,
  type RequestFacts,
  type TokenClaims,
} from './request-rules.js';
import type { TokenVerifier } from './token-verifier.js';

/** The HTTP status each refusal is answered with. */
export const DENY_STATUS: Readonly<Record<HttpDenyReason, 400 | 401 | 403 | 503>> = Object.freeze({
  'bad-path': 400,
  'no-matching-rule': 403,
  'token-missing': 401,
  'token-malformed': 401,
  'alg-not-allowed': 401,
  'token-expired': 401,
  'token-not-yet-valid': 401,
  'wrong-issuer': 401,
  'wrong-audience': 401,
  'unknown-key': 401,
  'bad-signature': 401,
  // The caller's token may be fine; the agent cannot tell, so it fails closed.
  'jwks-unavailable': 503,
  'missing-scope': 403,
  'client-not-allowed': 403,
});

/** A request as the HTTP stage or `/why` sees it. */
export interface RequestToJudge extends RequestFacts {
  /** The `Authorization` header value, if any. */
  readonly authorization: string | undefined;
}

/** The decision on one request, with the rule that decided and the token facts. */
export type HttpVerdict =
  | {
      readonly allowed: true;
      readonly reason: 'anonymous' | 'token-accepted';
      readonly rule: HttpRule;
      /** Claims of the verified token; undefined on an anonymous rule. */
      readonly claims: TokenClaims | undefined;
      readonly explanation: string;
    }
  | {
      readonly allowed: false;
      readonly status: 400 | 401 | 403 | 503;
      readonly reason: HttpDenyReason;
      readonly rule: HttpRule | undefined;
      readonly claims: TokenClaims | undefined;
      readonly missingScope: string | undefined;
      /** Whether a token was presented; decides `error="invalid_token"` on a 401. */
      readonly tokenGiven: boolean;
      readonly explanation: string;
    };

/**
 * Decides one request: the first rule matching method, path and peer; then,
 * unless the rule is anonymous, the bearer token (verified by `verifier`) and
 * the rule's scopes and clients. No rule, no token, a bad token or missing
 * rights deny; JWKS trouble denies with `jwks-unavailable`. Never throws.
 */
export async function judgeRequest(
  section: HttpSection,
  verifier: TokenVerifier | undefined,
  request: RequestToJudge,
): Promise<HttpVerdict> {
  const where = `${request.method} ${request.target}`;
  const match = matchRule(section, request);
  const token = bearerToken(request.authorization);
  const tokenGiven = token !== undefined;
  if (!match.ok) {
    const why =
      match.reason === 'bad-path' ? 'the path cannot be judged safely' : 'no rule matches';
    return deny(match.reason, undefined, tokenGiven, `denied: ${where}: ${why}`);
  }

  const rule = match.rule;
  if (rule.anonymous) {
    return {
      allowed: true,
      reason: 'anonymous',
      rule,
      claims: undefined,
      explanation: `allowed: ${where} by ${rule.name}, which needs no token`,
    };
  }
  if (token === undefined || token === null) {
    const why = token === null ? 'the Authorization header is not a bearer token' : 'no token';
    return deny('token-missing', rule, tokenGiven, `denied: ${where} by ${rule.name}: ${why}`);
  }
  if (verifier === undefined) {
    return deny('jwks-unavailable', rule, true, `denied: ${where}: no token settings`);
  }

  const result = await verifier.verify(token);
  if (!result.ok) {
    return deny(result.reason, rule, true, `denied: ${where} by ${rule.name}: ${result.detail}`);
  }
  const rights = authorizeClaims(rule, result.claims);
  if (!rights.ok) {
    const missingScope = rights.reason === 'missing-scope' ? rights.missingScope : undefined;
    const why =
      missingScope !== undefined
        ? `token lacks scope ${missingScope}`
        : `client ${JSON.stringify(result.claims.clientId ?? null)} is not one of ${rule.clients?.join(', ')}`;
    return {
      ...deny(rights.reason, rule, true, `denied: ${where} by ${rule.name}: ${why}`),
      claims: result.claims,
      missingScope,
    };
  }
  return {
    allowed: true,
    reason: 'token-accepted',
    rule,
    claims: result.claims,
    explanation: `allowed: ${where} by ${rule.name} for sub ${JSON.stringify(result.claims.sub ?? null)}`,
  };
}

function deny(
  reason: HttpDenyReason,
  rule: HttpRule | undefined,
  tokenGiven: boolean,
  explanation: string,
): Extract<HttpVerdict, { allowed: false }> {
  return {
    allowed: false,
    status: DENY_STATUS[reason],
    reason,
    rule,
    claims: undefined,
    missingScope: undefined,
    tokenGiven,
    explanation,
  };
}
