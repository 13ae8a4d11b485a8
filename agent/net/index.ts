// Socket plumbing shared by the inbound and outbound proxies: splicing two
// sockets with half-close and byte counts. It knows nothing of TLS or policy.
export { splice, type SpliceResult } from './splice.js';
