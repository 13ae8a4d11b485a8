import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { errorCode, errorMessage } from '../../certs/errors.js';
import type { Logger } from '../../certs/log.js';
import type { AgentMetrics, Direction } from '../metrics.js';
import { splice, tallyConnection } from '../net/index.js';
import {
  failureOfRejection,
  logHandshakeFailure,
  type HandshakeFailure,
  type LiveConnections,
} from '../tls/index.js';
import { HandshakeFailedError, PeerRejectedError } from './dialer.js';
import type { PeerChannel } from './peer-sessions.js';

const DIRECTION: Direction = 'outbound';

/** What carrying an application connection outwards needs. */
export interface CarryDeps {
  live: LiveConnections;
  log: Logger;
  metrics: AgentMetrics;
}

/**
 * The one outbound path after the dial, shared by explicit upstreams and
 * transparent interception: a verified peer is tracked (revocation and
 * expiry close it) and spliced to the application's connection; a refused or
 * failed dial is logged with its reason and counted, a failed handshake (TLS
 * error or refused peer) also as `handshake.failed`, and the application's
 * connection is closed.
 */
export function carryToPeer(
  app: Socket,
  dialed: Promise<PeerChannel>,
  target: string,
  deps: CarryDeps,
): void {
  dialed.then(
    (peer) => {
      const mux = peer.mux;
      if (!mux || mux.isNewSession) {
        deps.metrics.handshakeSeconds.observe({ direction: DIRECTION }, peer.handshakeMs / 1000);
      }
      if (mux) deps.metrics.muxStreams.inc({ direction: DIRECTION });
      const channel: Duplex = mux ? mux.stream : peer.socket;
      if (app.destroyed) {
        channel.destroy();
        return;
      }
      // A stream shares its session's peer: whatever closes it (revocation,
      // lost trust, expiry) closes the session with every stream on it.
      const closes = mux ? [channel, app, mux.session] : [channel, app];
      const { id, remove } = deps.live.track(DIRECTION, peer, closes);
      deps.metrics.connections.inc({ direction: DIRECTION, result: 'allowed' });
      pipeOutbound(app, channel, { conn_id: id, peer_id: peer.spiffeId, target }, remove, deps);
    },
    (err: unknown) => {
      const isRejected = err instanceof PeerRejectedError;
      const reason = isRejected ? err.reason : errorCode(err);
      deps.metrics.connections.inc({
        direction: DIRECTION,
        result: isRejected ? 'rejected' : 'error',
      });
      if (isRejected) deps.metrics.peerRejections.inc({ direction: DIRECTION, reason });
      deps.log.warn(
        {
          ...(isRejected ? { event: 'peer.rejected' } : {}),
          direction: DIRECTION,
          target,
          reason,
          detail: errorMessage(err),
          ...(isRejected && err.peerId ? { peer_id: err.peerId } : {}),
        },
        isRejected ? 'peer rejected' : 'dial failed',
      );
      const failure = handshakeFailureOf(err);
      if (failure) {
        logHandshakeFailure(deps.log, {
          direction: DIRECTION,
          reason: failure,
          remoteAddress: target,
          peerId: isRejected ? err.peerId : undefined,
          detail: errorMessage(err),
        });
      }
      app.destroy();
    },
  );
}

/** Splices an outbound connection, keeping the gauges and byte counters and logging its end. */
export function pipeOutbound(
  app: Socket,
  peer: Duplex,
  fields: { conn_id?: number; peer_id: string; target: string },
  remove: () => void,
  deps: Omit<CarryDeps, 'live'>,
): void {
  const done = tallyConnection(deps, DIRECTION, fields);
  splice(app, peer, (result) => {
    remove();
    done({ fromPeer: result.bytesToApp, toPeer: result.bytesFromApp });
  });
}

/** The handshake failure a failed dial amounts to; none when TCP never connected. */
function handshakeFailureOf(err: unknown): HandshakeFailure | undefined {
  if (err instanceof PeerRejectedError) return failureOfRejection(err.reason, DIRECTION);
  if (err instanceof HandshakeFailedError) return err.failure;
  return undefined;
}
