import { connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { HostPort } from '../../certs/host-port.js';
import type { Logger } from '../../certs/log.js';
import type { AgentMetrics, Direction } from '../metrics.js';
import { splice, tallyConnection } from '../net/index.js';
import type { RequestStage } from './inbound-deps.js';

const DIRECTION: Direction = 'inbound';

/** A peer-side socket whose byte counts the request stage's close reports. */
export type CountedDuplex = Duplex & { bytesRead: number; bytesWritten: number };

/**
 * Forwards admitted connections and streams to the application on
 * localhost: dials it, splices the two sides or hands the peer side to the
 * request stage, and on close counts the bytes, lowers the active gauge and
 * logs `connection closed` with the connection's figures.
 */
export class AppForwarder {
  constructor(private readonly deps: { log: Logger; metrics: AgentMetrics }) {}

  /** Opens a paused, half-open-capable, no-delay connection to the application at `target`. */
  dial(target: HostPort): Socket {
    const app = connect({
      host: target.host,
      port: target.port,
      allowHalfOpen: true,
      noDelay: true,
    });
    app.pause();
    return app;
  }

  /**
   * Splices `peer` and `app` both ways; a failed application dial is logged
   * (err_code APP_UNREACHABLE). `remove` runs once both sides have closed.
   */
  splice(app: Socket, peer: Duplex, connId: number, peerId: string, remove: () => void): void {
    const done = tallyConnection(this.deps, DIRECTION, { conn_id: connId, peer_id: peerId });
    app.once('error', (err) =>
      this.deps.log.error(
        {
          direction: DIRECTION,
          conn_id: connId,
          peer_id: peerId,
          err_code: 'APP_UNREACHABLE',
          reason: err.message,
        },
        'application connection failed',
      ),
    );
    splice(app, peer, (result) => {
      remove();
      done({ fromPeer: result.bytesToApp, toPeer: result.bytesFromApp });
    });
  }

  /**
   * Hands `socket` to the request stage for the application at `app`; an
   * undefined `peerId` is a plaintext peer. `remove` runs once it has closed.
   */
  serveRequests(
    stage: RequestStage,
    socket: CountedDuplex,
    app: HostPort,
    connId: number,
    peerId: string | undefined,
    remove: () => void,
  ): void {
    const done = tallyConnection(this.deps, DIRECTION, {
      conn_id: connId,
      peer_id: peerId ?? 'plaintext',
    });
    stage.serve(socket, { peerId, app, connId }, () => {
      remove();
      done({ fromPeer: socket.bytesRead, toPeer: socket.bytesWritten });
    });
  }
}
