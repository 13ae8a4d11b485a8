import type { ServerUnaryCall, ServerWritableStream } from '@grpc/grpc-js';
import type { PeerCertificate } from 'node:tls';
import type { PeerIdentity } from '../authority/index.js';
import { normaliseSerialHex } from '../x509/index.js';

/** Any server call whose TLS auth context can be read. */
export type AuthenticatedCall = Pick<
  ServerUnaryCall<unknown, unknown> | ServerWritableStream<unknown, unknown>,
  'getAuthContext' | 'getPeer'
>;

/** How many parsed peer identities are kept; callers renew over few connections. */
const MAX_CACHED_PEERS = 4096;

const cache = new Map<string, PeerIdentity>();

/**
 * Returns the identity in the caller's TLS client certificate when it
 * presented one that chained to the trust bundle (node verified it in the
 * handshake), else undefined. Revocation checks are the caller's job.
 * Parsed identities are cached by certificate fingerprint, since the same
 * agent calls over and over with the same certificate.
 */
export function verifiedPeer(call: AuthenticatedCall): PeerIdentity | undefined {
  const cert = call.getAuthContext()?.sslPeerCertificate;
  if (!cert?.fingerprint256) return undefined;
  const cached = cache.get(cert.fingerprint256);
  if (cached) return cached;
  const identity = identityOf(cert);
  if (cache.size >= MAX_CACHED_PEERS) cache.clear();
  cache.set(cert.fingerprint256, identity);
  return identity;
}

function identityOf(cert: PeerCertificate): PeerIdentity {
  const uris = (cert.subjectaltname ?? '')
    .split(', ')
    .filter((entry) => entry.startsWith('URI:'))
    .map((entry) => entry.slice(4));
  const only = uris.length === 1 ? uris[0] : undefined;
  return {
    serialHex: normaliseSerialHex(cert.serialNumber),
    spiffeId: only?.startsWith('spiffe://') ? only : undefined,
  };
}
