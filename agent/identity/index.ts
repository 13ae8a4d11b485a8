// The agent's identity: an in-memory key pair, its X.509-SVID from the CA,
// rotation before expiry, and the trust bundle and revocations watched live.
// It depends on certs/ (client, x509, spiffe-id) only, never on other agent/
// folders; the TLS layer consumes what it publishes.
export { backoffDelayMs, RETRY_BACKOFF, type BackoffPolicy } from './backoff.js';
export { FakeClock, systemClock, type Clock, type TimerHandle } from './clock.js';
export { credentialFromSignResponse, type WorkloadCredential } from './credential.js';
export {
  IdentityConfigError,
  resolveIdentityOptions,
  type IdentityMetrics,
  type IdentityOptions,
  type IdentityProof,
  type ResolvedIdentityOptions,
} from './identity-options.js';
export { CredentialSigner, type SignOutcome, type SigningVia } from './credential-signer.js';
export { IdentityManager, type IdentityState } from './identity-manager.js';
export { renewAtMs, RENEW_AT_FRACTION, RENEW_JITTER_FRACTION } from './renewal-time.js';
export {
  readServiceAccountToken,
  spiffeIdFromServiceAccountToken,
} from './service-account-token.js';
export {
  trustSnapshotOf,
  type SnapshotMeshPolicy,
  type SnapshotMeshRejection,
  type TrustSnapshot,
} from './trust-snapshot.js';
export { TrustWatch, type TrustWatchOptions } from './trust-watch.js';
