// Turning checked CSRs into leaf certificates, inline or on worker threads.
// Pure checks and signing live in svid-request.ts; the pool only moves work.
// It depends on x509/ and spiffe-id, never on the store or the servers.
export { SigningPool } from './signing-pool.js';
export {
  checkWorkloadId,
  requestedIdOf,
  signSvidRequest,
  type SignedLeaf,
  type SvidRequest,
} from './svid-request.js';
