import type { Logger } from '../../certs/log.js';
import type { AgentMetrics, Direction } from '../metrics.js';

/** Bytes a finished connection moved, counted on the plaintext side. */
export interface ConnectionBytes {
  /** Bytes the peer sent (towards the local application or client). */
  fromPeer: number;
  /** Bytes sent to the peer. */
  toPeer: number;
}

/**
 * Counts a connection as active in `direction` from now until the returned
 * function is called with what it moved; that call lowers the gauge, adds the
 * bytes by flow and logs `connection closed` (debug) with `fields`, the byte
 * counts and the duration. The one bookkeeping of every proxied connection.
 */
export function tallyConnection(
  deps: { log: Logger; metrics: Pick<AgentMetrics, 'activeConnections' | 'bytes'> },
  direction: Direction,
  fields: Record<string, unknown>,
): (bytes: ConnectionBytes) => void {
  const started = Date.now();
  deps.metrics.activeConnections.inc({ direction });
  return ({ fromPeer, toPeer }) => {
    deps.metrics.activeConnections.dec({ direction });
    deps.metrics.bytes.inc({ direction, flow: 'from_peer' }, fromPeer);
    deps.metrics.bytes.inc({ direction, flow: 'to_peer' }, toPeer);
    deps.log.debug(
      {
        direction,
        ...fields,
        bytes_in: fromPeer,
        bytes_out: toPeer,
        duration_ms: Date.now() - started,
      },
      'connection closed',
    );
  };
}
