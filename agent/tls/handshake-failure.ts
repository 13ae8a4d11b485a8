import type { Logger } from '../../certs/log.js';
import type { Direction } from '../metrics.js';
import type { PeerRejection } from './peer-verifier.js';

/**
 * Why a mutual-TLS handshake failed, as the `reason` of a `handshake.failed`
 * event: a short, stable, bounded word an operator can filter on.
 */
export type HandshakeFailure =
  | 'no-client-cert'
  | 'no-server-cert'
  | 'peer-untrusted'
  | 'peer-expired'
  | 'peer-revoked'
  | 'unexpected-identity'
  | 'handshake-timeout'
  | 'protocol'
  | 'tls-error'
  | 'not-ready';

/** What one `handshake.failed` event says. */
export interface HandshakeFailureFields {
  direction: Direction;
  reason: HandshakeFailure;
  /** The peer's address: the remote IP inbound, `host:port` dialled outbound. */
  remoteAddress: string | undefined;
  /** The identity the peer presented, when it presented a readable one. */
  peerId?: string | undefined;
  /** The underlying error or verification detail, for humans. */
  detail: string;
}

/**
 * The handshake failure a failed peer verification amounts to. A peer without
 * a certificate is named by the side that should have sent it: the client
 * inbound, the server outbound.
 */
export function failureOfRejection(
  rejection: PeerRejection,
  direction: Direction,
): HandshakeFailure {
  switch (rejection) {
    case 'no-certificate':
      return direction === 'inbound' ? 'no-client-cert' : 'no-server-cert';
    case 'expired':
      return 'peer-expired';
    case 'revoked':
      return 'peer-revoked';
    case 'unexpected-identity':
      return 'unexpected-identity';
    case 'untrusted':
    case 'not-yet-valid':
    case 'not-svid':
    case 'wrong-trust-domain':
      return 'peer-untrusted';
  }
}

/**
 * The handshake failure a TLS-layer error amounts to, from its OpenSSL or
 * Node code and message: a timeout, a protocol mismatch (TLS version,
 * plaintext or garbage on a TLS port), or any other TLS error.
 */
export function failureOfTlsError(err: Error & { code?: string }): HandshakeFailure {
  const text = `${err.code ?? ''} ${err.message}`.toLowerCase();
  if (text.includes('timed out') || text.includes('timeout')) return 'handshake-timeout';
  const isProtocol = ['protocol', 'version', 'http_request', 'record_layer', 'packet_length'].some(
    (word) => text.includes(word),
  );
  return isProtocol ? 'protocol' : 'tls-error';
}

/**
 * Logs one `handshake.failed` security event at warn. Callers log it once per
 * connection; it sits beside the `peer.rejected` line where there is one, so
 * the event feed sees every failed handshake under one name.
 */
export function logHandshakeFailure(log: Logger, fields: HandshakeFailureFields): void {
  log.warn(
    {
      event: 'handshake.failed',
      direction: fields.direction,
      reason: fields.reason,
      remote_address: fields.remoteAddress,
      ...(fields.peerId ? { peer_id: fields.peerId } : {}),
      detail: fields.detail,
    },
    'handshake failed',
  );
}
