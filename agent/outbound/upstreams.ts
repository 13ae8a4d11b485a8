import { createServer, type Server, type Socket } from 'node:net';
import { formatHostPort, listenOn } from '../../certs/host-port.js';
import type { Logger } from '../../certs/log.js';
import type { AgentMetrics } from '../metrics.js';
import type { LiveConnections } from '../tls/index.js';
import { carryToPeer } from './carry.js';
import type { PeerLink } from './peer-sessions.js';

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
  dialer: PeerLink;
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
      const port = await listenOn(server, { host: this.bindHost, port: spec.localPort });
      this.servers.push(server);
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
    carryToPeer(
      app,
      this.deps.dialer.dial(spec.host, spec.port, spec.expectedId),
      target,
      this.deps,
    );
  }
}
