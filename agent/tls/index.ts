// The agent's TLS layer: hot-swappable secure contexts, peer verification
// against the trust bundle and revocation set, and the registry of live
// connections that enforces revocation and expiry on them. It must not
// depend on inbound/, outbound/ or policy/.
export { TlsContextHolder, TLS13_CIPHERSUITES, type TlsMaterial } from './tls-context.js';
export {
  failureOfRejection,
  failureOfTlsError,
  logHandshakeFailure,
  type HandshakeFailure,
  type HandshakeFailureFields,
} from './handshake-failure.js';
export {
  ChainCache,
  verifyChain,
  verifyPeer,
  type PeerRejection,
  type PeerVerdict,
  type TrustFacts,
} from './peer-verifier.js';
export {
  LiveConnections,
  closeEvent,
  type AdmittedPeer,
  type LiveConnection,
} from './live-connections.js';
