// Proof of identity for the CA's Sign call: Kubernetes service-account tokens
// checked against the cluster's issuer keys, and one-time join tokens. Pure
// checks with no store access; the store spends join tokens, the server decides.
export {
  SaTokenVerifier,
  SA_TOKEN_ALGORITHMS,
  SA_TOKEN_AUDIENCE,
  MAX_SA_TOKEN_BYTES,
  type AuthnResult,
  type SaTokenVerifierOptions,
} from './sa-token.js';
export {
  apiServerUrlFromEnv,
  DEFAULT_API_SERVER_URL,
  DEFAULT_JWKS_COOLDOWN_MS,
  DEFAULT_JWKS_MAX_AGE_MS,
  DEFAULT_SA_CA_FILE,
  DEFAULT_SA_TOKEN_FILE,
  isJwksDiscovery,
  JWKS_DISCOVERY_VALUES,
  KubernetesJwks,
  type KubernetesJwksOptions,
} from './oidc-discovery.js';
export {
  generateJoinToken,
  hashJoinToken,
  isJoinTokenShaped,
  JOIN_TOKEN_PREFIX,
  JOIN_TOKEN_RANDOM_BYTES,
} from './join-token.js';
