import { createServer as createNetServer, type Server, type Socket } from 'node:net';
import {
  createServer as createTlsServer,
  type Server as TlsServer,
  type TLSSocket,
} from 'node:tls';
import { formatHostPort, listenOn } from '../../certs/host-port.js';
import type { Direction } from '../metrics.js';
import { MUX_ALPN } from '../mux/index.js';
import { ChainCache, failureOfRejection, failureOfTlsError, verifyPeer } from '../tls/index.js';
import { AppForwarder } from './app-forwarder.js';
import { AppTargets } from './app-target.js';
import type { InboundDeps, InboundOptions } from './inbound-deps.js';
import { MuxSessions } from './mux-sessions.js';
import { handshakeReason, rejectPeer, type RejectionExtra } from './peer-rejection.js';
import { acceptPlaintext, routeByFirstByte, type PlaintextDeps } from './plaintext-path.js';
import { rawSocketOf } from './raw-socket.js';

export type { InboundDeps, InboundOptions, RequestStage } from './inbound-deps.js';

const DIRECTION: Direction = 'inbound';

/**
 * The inbound side of the sidecar: accepts peers on the inbound port, tells
 * TLS from plaintext by the first byte, completes a TLS 1.3 handshake that
 * requests a client certificate, verifies the peer and asks the policy, then
 * splices the connection to the application on localhost, or, when the policy
 * has HTTP request rules for its application port, hands it to the request
 * stage. Every refusal is logged with its reason and counted; nothing is
 * refused silently.
 */
export class InboundProxy {
  private readonly server: Server;
  private tlsServer: TlsServer | undefined;
  private readonly chains = new ChainCache();
  private readonly sockets = new Set<Socket>();
  private readonly acceptedAt = new WeakMap<Socket, number>();
  private readonly targets: AppTargets;
  private readonly forwarder: AppForwarder;
  private readonly sessions: MuxSessions;
  private readonly plaintext: PlaintextDeps;
  private unsubscribe: (() => void) | undefined;
  private boundPort = 0;

  constructor(
    private readonly options: InboundOptions,
    private readonly deps: InboundDeps,
  ) {
    this.server = createNetServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) =>
      this.onConnection(socket),
    );
    this.targets = new AppTargets({
      appAddr: options.appAddr,
      agentPorts: options.agentPorts,
      originalDst: deps.originalDst,
      boundPort: () => this.boundPort,
    });
    this.forwarder = new AppForwarder(deps);
    const forwarding = {
      live: deps.live,
      log: deps.log,
      metrics: deps.metrics,
      requestStage: deps.requestStage,
      targets: this.targets,
      forwarder: this.forwarder,
    };
    this.sessions = new MuxSessions({
      ...forwarding,
      trustDomain: options.trustDomain,
      trust: deps.trust,
      recheck: deps.recheck,
    });
    this.plaintext = forwarding;
  }

  /** Starts listening (the TLS material must be loaded); resolves with the bound address. */
  async start(): Promise<string> {
    const tlsServer = createTlsServer({
      ...this.deps.tls.serverOptions(),
      requestCert: true,
      // Verified by verifyPeer, so every refusal is logged with its reason.
      rejectUnauthorized: false,
      handshakeTimeout: this.options.handshakeTimeoutMs,
      allowHalfOpen: true,
      // A dialer offering it gets one session for many application
      // connections; one offering no ALPN gets one connection per TLS session.
      ALPNProtocols: [MUX_ALPN],
    });
    tlsServer.on('secureConnection', (socket) => this.onSecure(socket));
    tlsServer.on('tlsClientError', (err, socket) => {
      this.reject(socket, handshakeReason(err), err.message, { failure: failureOfTlsError(err) });
    });
    this.tlsServer = tlsServer;
    this.unsubscribe = this.deps.tls.onUpdate((options) => tlsServer.setSecureContext(options));
    this.boundPort = await listenOn(this.server, this.options.listen);
    return formatHostPort({ host: this.options.listen.host, port: this.boundPort });
  }

  /** The bound port (after start). */
  get port(): number {
    return this.boundPort;
  }

  /**
   * Stops accepting; live connections go on. Mux sessions take no new
   * streams (the dialer is told by GOAWAY) and close with their last one.
   */
  stopAccepting(): Promise<void> {
    this.unsubscribe?.();
    this.sessions.drainAll();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  /** Destroys every connection still open. */
  destroyAll(): void {
    for (const socket of this.sockets) socket.destroy();
  }

  /**
   * How many connections are open: raw connections (handshaking or proxied)
   * and the streams of mux sessions, not the sessions themselves, so an idle
   * session does not hold up a drain.
   */
  get openConnections(): number {
    return this.sockets.size - this.sessions.sessionCount + this.sessions.streamCount;
  }

  private onConnection(socket: Socket): void {
    if (this.sockets.size >= this.options.maxConnections) {
      this.deps.metrics.connections.inc({ direction: DIRECTION, result: 'overloaded' });
      this.deps.log.warn(
        { direction: DIRECTION, reason: 'overloaded', limit: this.options.maxConnections },
        'connection refused',
      );
      socket.destroy();
      return;
    }

    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    // As on the other three sockets of the path: a small write (a response's
    // headers, then its body) goes out at once instead of waiting, by Nagle's
    // rule, for the ACK of the segment before it.
    socket.setNoDelay(true);
    const target = this.targets.resolve(socket);
    if (!target.ok) {
      this.reject(socket, target.reason, target.detail);
      return;
    }

    this.acceptedAt.set(socket, performance.now());
    socket.setTimeout(this.options.handshakeTimeoutMs, () =>
      this.reject(socket, 'timeout', 'no handshake before the timeout', {
        failure: 'handshake-timeout',
      }),
    );
    routeByFirstByte(socket, {
      tls: (s) => this.tlsServer?.emit('connection', s),
      plaintext: (s) => {
        if (this.options.mode() === 'permissive') acceptPlaintext(this.plaintext, s);
        else {
          this.reject(s, 'plaintext', 'strict mode accepts only mutual TLS', {
            failure: 'protocol',
          });
        }
      },
    });
  }

  private onSecure(socket: TLSSocket): void {
    const raw = rawSocketOf(socket);
    raw.setTimeout(0);
    const started = this.acceptedAt.get(raw);
    if (started !== undefined) {
      this.deps.metrics.handshakeSeconds.observe(
        { direction: DIRECTION },
        (performance.now() - started) / 1000,
      );
    }

    const trust = this.deps.trust();
    if (!trust) {
      this.reject(socket, 'not-ready', 'no trust bundle loaded yet', { failure: 'not-ready' });
      return;
    }
    const verdict = verifyPeer(socket, trust, {
      trustDomain: this.options.trustDomain,
      now: new Date(),
      chains: this.chains,
    });
    if (!verdict.ok) {
      this.reject(socket, verdict.reason, verdict.detail, {
        peerId: verdict.spiffeId,
        failure: failureOfRejection(verdict.reason, DIRECTION),
      });
      return;
    }

    const decision = this.deps.admit(verdict.spiffeId);
    if (decision.wouldDeny) {
      this.deps.metrics.policyDenials.inc({
        peer_id: verdict.spiffeId,
        reason: decision.reason,
        dry_run: String(decision.dryRun),
      });
      this.deps.log.warn(
        {
          event: decision.dryRun ? 'policy.dry_run_denied' : 'policy.denied',
          direction: DIRECTION,
          peer_id: verdict.spiffeId,
          reason: decision.reason,
          rule: decision.rule,
          layer: decision.layer,
          mesh_version: decision.meshVersion,
          explanation: decision.explanation,
        },
        decision.dryRun ? 'peer would be denied by policy' : 'peer denied by policy',
      );
    }
    if (!decision.allowed) {
      this.deps.metrics.connections.inc({ direction: DIRECTION, result: 'denied' });
      socket.destroy();
      return;
    }

    if (socket.alpnProtocol === MUX_ALPN) {
      this.sessions.serve(socket, raw, verdict);
      return;
    }
    const stage = this.deps.requestStage;
    const appTarget = this.targets.of(raw);
    if (stage?.judges(appTarget.port)) {
      const { id: connId, remove } = this.deps.live.track(DIRECTION, verdict, [socket]);
      this.deps.metrics.connections.inc({ direction: DIRECTION, result: 'allowed' });
      this.forwarder.serveRequests(stage, socket, appTarget, connId, verdict.spiffeId, remove);
      return;
    }
    const app = this.forwarder.dial(appTarget);
    const { id: connId, remove } = this.deps.live.track(DIRECTION, verdict, [socket, app]);
    this.deps.metrics.connections.inc({ direction: DIRECTION, result: 'allowed' });
    this.forwarder.splice(app, socket, connId, verdict.spiffeId, remove);
  }

  private reject(socket: Socket, reason: string, detail: string, extra?: RejectionExtra): void {
    rejectPeer(this.deps, socket, reason, detail, extra);
  }
}
