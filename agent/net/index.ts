// Socket plumbing shared by the inbound and outbound proxies: splicing two
// sockets with half-close and byte counts, and the bookkeeping of each
// proxied connection. It knows nothing of TLS or policy.
export { splice, type SpliceResult } from './splice.js';
export { tallyConnection, type ConnectionBytes } from './connection-tally.js';
