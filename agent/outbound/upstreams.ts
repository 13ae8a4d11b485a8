import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { errorCode, errorMessage } from '../../certs/errors.js';
import { formatHostPort } from '../../certs/host-port.js';
import type { Logger } from '../../certs/log.js';
import type { AgentMetrics, Direction } from '../metrics.js';
import { splice } from '../net/index.js';
import type { LiveConnections } from '../tls/index.js';
import { PeerRejectedError, type PeerDialer } from './dialer.js';

const DIRECTION: Direction = 'outbound';

/** One explicit upstream: `LOCALPORT=HOST:PORT[@SPIFFE_ID]`. */
export interface UpstreamSpec {
  localPort: number;
  host: string;
  port: number;
  /** When set, the peer must present exactly this identity. */
  expectedId: string | undefined;
}

/** What explicit upstreams need from the composition root. */
export interface UpstreamDeps {
  dialer: PeerDialer;
  live: LiveConnections;
  log: Logger;
  metrics: AgentMetrics;
}

/**
 * Explicit upstreams, as in Consul's built-in proxy: the application connects
 * to 127.0.0.1:LOCALPORT and the agent carries the connection to the peer's
 * inbound port over mutual TLS. Refused dials close the application's
 * connection and are logged with the reason.
 */
export class ExplicitUpstreams {
  private readonly servers: Server[] = [];
  private readonly sockets = new Set<Socket>();

  constructor(
    private readonly specs: readonly UpstreamSpec[],
    private readonly deps: UpstreamDeps,
    private readonly bindHost = '127.0.0.1',
  ) {}

  /** Listens on every local port; resolves with the bound addresses in spec order. */
  async start(): Promise<string[]> {
    const addresses: string[] = [];
    for (const spec of this.specs) {
      const server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) =>
        this.onConnection(socket, spec),
      );
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(spec.localPort, this.bindHost, () => {
          server.off('error', reject);
          resolve();
        });
      });
      this.servers.push(server);
      const port = (server.address() as AddressInfo).port;
      addresses.push(formatHostPort({ host: this.bindHost, port }));
    }
    return addresses;
  }

  /** Stops accepting on every local port; live connections go on. */
  async stopAccepting(): Promise<void> {
    await Promise.all(
      this.servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))),
    );
  }

  /** Destroys every connection still open. */
  destroyAll(): void {
    for (const socket of this.sockets) socket.destroy();
  }

  /** How many application connections are open. */
  get openConnections(): number {
    return this.sockets.size;
  }

  private onConnection(app: Socket, spec: UpstreamSpec): void {
    this.sockets.add(app);
    app.once('close', () => this.sockets.delete(app));
    app.on('error', () => app.destroy());
    app.setNoDelay(true);
    const target = formatHostPort({ host: spec.host, port: spec.port });
    this.deps.dialer.dial(spec.host, spec.port, spec.expectedId).then(
      (peer) => {
        this.deps.metrics.handshakeSeconds.observe(
          { direction: DIRECTION },
          peer.handshakeMs / 1000,
        );
        if (app.destroyed) {
          peer.socket.destroy();
          return;
        }
        const { id: connId, remove } = this.deps.live.track(DIRECTION, peer, [peer.socket, app]);
        this.deps.metrics.connections.inc({ direction: DIRECTION, result: 'allowed' });
        this.deps.metrics.activeConnections.inc({ direction: DIRECTION });
        const started = Date.now();
        splice(app, peer.socket, (result) => {
          remove();
          this.deps.metrics.activeConnections.dec({ direction: DIRECTION });
          this.deps.metrics.bytes.inc(
            { direction: DIRECTION, flow: 'to_peer' },
            result.bytesFromApp,
          );
          this.deps.metrics.bytes.inc(
            { direction: DIRECTION, flow: 'from_peer' },
            result.bytesToApp,
          );
          this.deps.log.debug(
            {
              direction: DIRECTION,
              conn_id: connId,
              peer_id: peer.spiffeId,
              target,
              bytes_in: result.bytesToApp,
              bytes_out: result.bytesFromApp,
              duration_ms: Date.now() - started,
            },
            'connection closed',
          );
        });
      },
      (err: unknown) => {
        const isRejected = err instanceof PeerRejectedError;
        const reason = isRejected ? err.reason : errorCode(err);
        this.deps.metrics.connections.inc({
          direction: DIRECTION,
          result: isRejected ? 'rejected' : 'error',
        });
        if (isRejected) this.deps.metrics.peerRejections.inc({ direction: DIRECTION, reason });
        this.deps.log.warn(
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
        app.destroy();
      },
    );
  }
}
