// HTTP-aware inbound: request rules (pure), bearer-token verification and the
// HTTP/1.1 stage between a verified peer connection and the application.
// Must not import inbound/ or outbound/: inbound hands connections in.
export {
  authorizeClaims,
  bearerToken,
  matchRule,
  readClaims,
  requestPath,
  ruleMatches,
  type HttpDenyReason,
  type RequestFacts,
  type RuleAuthorization,
  type RuleMatch,
  type TokenClaims,
  type TokenFailureReason,
} from './request-rules.js';
export {
  ACCESS_TOKEN_ALGORITHMS,
  DEFAULT_JWKS_FETCH_TIMEOUT_MS,
  DEFAULT_JWKS_MAX_AGE_MS,
  DEFAULT_JWKS_MIN_REFRESH_INTERVAL_MS,
  TokenVerifier,
  type TokenResult,
  type TokenVerifierOptions,
} from './token-verifier.js';
export {
  DENY_STATUS,
  judgeRequest,
  type HttpVerdict,
  type RequestToJudge,
} from './judge-request.js';
export {
  FORWARDED_HEADER_PREFIX,
  HttpStage,
  type HttpConnection,
  type HttpStageDeps,
} from './http-stage.js';
