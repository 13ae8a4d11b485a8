import { networkInterfaces } from 'node:os';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { errorMessage } from '../../certs/errors.js';
import { formatHostPort, listenOn, type HostPort } from '../../certs/host-port.js';
import type { Logger } from '../../certs/log.js';
import type { AgentMetrics, Direction } from '../metrics.js';
import type { LiveConnections } from '../tls/index.js';
import { carryToPeer, pipeOutbound } from './carry.js';
import type { PeerLink } from './peer-sessions.js';

const DIRECTION: Direction = 'outbound';

/** Settings of the transparent outbound listener. */
export interface TransparentOptions {
  /** Where iptables REDIRECT delivers the pod's outbound TCP. */
  listen: HostPort;
  /** Whether a destination belongs to the mesh (dialled with mutual TLS). */
  isMeshAddress: (address: string) => boolean;
  /** Destinations outside the mesh: carried as plain TCP, or refused. */
  external: 'pass' | 'refuse';
  /** Ports the agent itself serves; a local destination on one of them is a loop. */
  agentPorts: readonly number[];
}

/** What the transparent listener needs from the composition root. */
export interface TransparentDeps {
  dialer: PeerLink;
  live: LiveConnections;
  log: Logger;
  metrics: AgentMetrics;
  /** Reads the redirected connection's original destination (SO_ORIGINAL_DST). */
  originalDst: (socket: Socket) => { address: string; port: number };
}

/**
 * Transparent outbound: the pod's TCP arrives here by iptables REDIRECT. A
 * destination inside the mesh is dialled with mutual TLS at its original
 * address (the peer's own redirection hands it to the peer's agent) through
 * the same PeerDialer as explicit upstreams; other destinations pass through
 * as plain TCP or are refused, by policy. Connections with no original
 * destination, or one that is this agent, are refused (no loops).
 */
export class TransparentOutbound {
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private boundPort = 0;

  constructor(
    private readonly options: TransparentOptions,
    private readonly deps: TransparentDeps,
  ) {
    this.server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) =>
      this.onConnection(socket),
    );
  }

  /** Starts listening; resolves with the bound address. */
  async start(): Promise<string> {
    this.boundPort = await listenOn(this.server, this.options.listen);
    return formatHostPort({ host: this.options.listen.host, port: this.boundPort });
  }

  /** Stops accepting; live connections go on. */
  stopAccepting(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  /** Destroys every connection still open. */
  destroyAll(): void {
    for (const socket of this.sockets) socket.destroy();
  }

  /** How many application connections are open. */
  get openConnections(): number {
    return this.sockets.size;
  }

  private onConnection(app: Socket): void {
    this.sockets.add(app);
    app.once('close', () => this.sockets.delete(app));
    app.on('error', () => app.destroy());
    app.setNoDelay(true);

    let dst: { address: string; port: number };
    try {
      dst = this.deps.originalDst(app);
    } catch (err) {
      this.refuse(app, 'no-original-dst', errorMessage(err), undefined);
      return;
    }
    const target = formatHostPort({ host: dst.address, port: dst.port });
    if (this.isSelf(dst)) {
      this.refuse(app, 'loop', 'the original destination is this agent', target);
      return;
    }
    if (this.options.isMeshAddress(dst.address)) {
      carryToPeer(app, this.deps.dialer.dial(dst.address, dst.port), target, this.deps);
    } else if (this.options.external === 'pass') {
      this.passThrough(app, dst, target);
    } else {
      this.refuse(app, 'external-refused', 'destination outside the mesh CIDRs', target);
    }
  }

  private isSelf(dst: { address: string; port: number }): boolean {
    const isOwnPort = dst.port === this.boundPort || this.options.agentPorts.includes(dst.port);
    return isOwnPort && localAddresses().has(dst.address.toLowerCase());
  }

  private passThrough(app: Socket, dst: { address: string; port: number }, target: string): void {
    const upstream = connect({
      host: dst.address,
      port: dst.port,
      allowHalfOpen: true,
      noDelay: true,
    });
    upstream.pause();
    upstream.once('error', (err) => {
      this.deps.log.warn(
        { direction: DIRECTION, target, reason: 'DIAL_FAILED', detail: err.message },
        'dial failed',
      );
    });
    this.deps.metrics.connections.inc({ direction: DIRECTION, result: 'passthrough' });
    pipeOutbound(app, upstream, { peer_id: 'external', target }, () => undefined, this.deps);
  }

  private refuse(app: Socket, reason: string, detail: string, target: string | undefined): void {
    this.deps.metrics.connections.inc({ direction: DIRECTION, result: 'refused' });
    this.deps.log.warn(
      { direction: DIRECTION, reason, detail, ...(target ? { target } : {}) },
      'connection refused',
    );
    app.destroy();
  }
}

/** Every address of this network namespace, loopback included, lower-cased. */
function localAddresses(): Set<string> {
  const addresses = new Set(['127.0.0.1', '::1', '0.0.0.0', '::']);
  for (const list of Object.values(networkInterfaces())) {
    for (const entry of list ?? []) addresses.add(entry.address.toLowerCase());
  }
  return addresses;
}
