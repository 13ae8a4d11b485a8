// The CA's decisions: who may have which certificate for how long,
// revocation, join tokens, CRLs and the trust state agents watch. It owns no
// sockets and logs through the logger it is given; it builds on the store,
// signing, authn and x509 and never imports agent/ or certs/server/.
export { AuthorityError } from './authority-error.js';
export { CertificateAuthority } from './certificate-authority.js';
export { type SignedChain } from './issuance.js';
export { type PeerIdentity, type Proof } from './entitlements.js';
export { MIN_TTL_SECONDS, notAfterOf, type AuthorityOptions } from './lifetime.js';
export { normaliseSerial } from './request-input.js';
export { crlReasonOf } from './revocation-crl.js';
export { type TrustState } from './trust-publisher.js';
