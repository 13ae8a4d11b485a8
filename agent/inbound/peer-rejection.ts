import type { Socket } from 'node:net';
import type { Logger } from '../../certs/log.js';
import type { AgentMetrics, Direction } from '../metrics.js';
import { logHandshakeFailure, type HandshakeFailure } from '../tls/index.js';
import { rawSocketOf } from './raw-socket.js';

const DIRECTION: Direction = 'inbound';

/** Raw connections already refused, so a second timer or error does not log them again. */
const refused = new WeakSet<Socket>();

/** Who a refusal names and, when it is a failed handshake, how it failed. */
export interface RejectionExtra {
  peerId?: string | undefined;
  failure?: HandshakeFailure;
}

/**
 * Refuses an inbound connection and destroys it: logs `peer.rejected` and
 * counts it, and when the refusal is a failed handshake also logs
 * `handshake.failed`, once per connection (the raw socket's timeout and the
 * TLS server's may both fire).
 */
export function rejectPeer(
  deps: { log: Logger; metrics: AgentMetrics },
  socket: Socket,
  reason: string,
  detail: string,
  extra: RejectionExtra = {},
): void {
  const { peerId, failure } = extra;
  const raw = rawSocketOf(socket);
  if (refused.has(raw)) {
    socket.destroy();
    return;
  }

  refused.add(raw);
  deps.metrics.connections.inc({ direction: DIRECTION, result: 'rejected' });
  deps.metrics.peerRejections.inc({ direction: DIRECTION, reason });
  deps.log.warn(
    {
      event: 'peer.rejected',
      direction: DIRECTION,
      reason,
      detail,
      ...(peerId ? { peer_id: peerId } : {}),
      remote: socket.remoteAddress,
    },
    'peer rejected',
  );
  if (failure) {
    logHandshakeFailure(deps.log, {
      direction: DIRECTION,
      reason: failure,
      remoteAddress: socket.remoteAddress ?? raw.remoteAddress,
      peerId,
      detail,
    });
  }
  socket.destroy();
}

/** Names a handshake failure by what the peer did wrong. */
export function handshakeReason(err: Error & { code?: string }): string {
  const text = `${err.code ?? ''} ${err.message}`.toLowerCase();
  if (text.includes('timed out') || text.includes('timeout')) return 'timeout';
  if (text.includes('protocol') || text.includes('version')) return 'tls-version';
  if (text.includes('wrong_version_number') || text.includes('http_request')) return 'plaintext';
  return 'handshake-failed';
}
