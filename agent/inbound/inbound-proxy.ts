import { connect, createServer as createNetServer, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import {
  createServer as createTlsServer,
  type Server as TlsServer,
  type TLSSocket,
} from 'node:tls';
import { formatHostPort, listenOn, type HostPort } from '../../certs/host-port.js';
import type { Logger } from '../../certs/log.js';
import type { Direction, AgentMetrics } from '../metrics.js';
import {
  GoawayCode,
  MUX_ALPN,
  MuxSession,
  ResetCode,
  type MuxProtocolError,
  type MuxStream,
} from '../mux/index.js';
import { splice } from '../net/index.js';
import type { Decision, Mode } from '../policy/index.js';
import { readmitStreamPeer, type VerifiedPeer } from './stream-admission.js';
import {
  ChainCache,
  failureOfRejection,
  failureOfTlsError,
  logHandshakeFailure,
  verifyPeer,
  type HandshakeFailure,
  type LiveConnections,
  type TlsContextHolder,
  type TrustFacts,
} from '../tls/index.js';

const DIRECTION: Direction = 'inbound';

/** First byte of a TLS handshake record (RFC 8446 5.1, ContentType handshake). */
const TLS_HANDSHAKE_BYTE = 0x16;

/** Settings of the inbound listener. */
export interface InboundOptions {
  listen: HostPort;
  /**
   * Where the application listens, on localhost. Unset with transparent
   * interception: the redirected connection's original destination port
   * names the application port, on 127.0.0.1.
   */
  appAddr: HostPort | undefined;
  /** Ports the agent itself serves; an original destination on one of them is a loop. */
  agentPorts?: readonly number[];
  mode: () => Mode;
  /** How long a connection may stay silent or mid-handshake before it is dropped. */
  handshakeTimeoutMs: number;
  /** Most connections open at once; more are refused at accept. */
  maxConnections: number;
  trustDomain: string;
}

/**
 * A stage that serves allowed connections request by request (the HTTP
 * request rules) instead of the raw splice; only the active one is used.
 */
export interface RequestStage {
  /**
   * Whether connections to application port `appPort` are served request by
   * request; the others are spliced raw.
   */
  judges(appPort: number): boolean;
  /** Takes over `socket` (a TLS socket or a mux stream); `onClose` runs once it has closed. */
  serve(
    socket: Duplex,
    conn: { peerId: string | undefined; app: HostPort; connId: number },
    onClose: () => void,
  ): void;
}

/** What the inbound proxy is given by the composition root. */
export interface InboundDeps {
  tls: TlsContextHolder;
  trust: () => TrustFacts | undefined;
  admit: (peerId: string) => Decision;
  /**
   * Decides a peer without counting or logging: each new stream of a mux
   * session is checked again with it, so a session outlives no policy change.
   */
  recheck: (peerId: string) => Decision;
  live: LiveConnections;
  log: Logger;
  metrics: AgentMetrics;
  /** Reads a redirected connection's original destination (SO_ORIGINAL_DST), with interception. */
  originalDst?: (socket: Socket) => { address: string; port: number };
  /** Allowed connections to the ports it judges go through it rather than being spliced. */
  requestStage?: RequestStage;
}

/**
 * The inbound side of the sidecar: accepts peers on the inbound port, tells
 * TLS from plaintext by the first byte, completes a TLS 1.3 handshake that
 * requests a client certificate, verifies the peer and asks the policy, then
 * splices the connection to the application on localhost, or, when the policy
 * has HTTP request rules for its application port, hands it to the request
 * stage. Every refusal is
 * logged with its reason and counted; nothing is refused silently.
 */
export class InboundProxy {
  private readonly server: Server;
  private tlsServer: TlsServer | undefined;
  private readonly chains = new ChainCache();
  private readonly sockets = new Set<Socket>();
  private readonly sessions = new Set<MuxSession>();
  private streamCount = 0;
  private unsubscribe: (() => void) | undefined;
  private boundPort = 0;

  constructor(
    private readonly options: InboundOptions,
    private readonly deps: InboundDeps,
  ) {
    this.server = createNetServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) =>
      this.onConnection(socket),
    );
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
    for (const session of this.sessions) session.drain();
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
    return this.sockets.size - this.sessions.size + this.streamCount;
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
    const target = this.appTargetFor(socket);
    if (!target.ok) {
      this.reject(socket, target.reason, target.detail);
      return;
    }
    appTargets.set(socket, target.addr);
    acceptedAt.set(socket, performance.now());
    socket.setTimeout(this.options.handshakeTimeoutMs, () =>
      this.reject(socket, 'timeout', 'no handshake before the timeout', {
        failure: 'handshake-timeout',
      }),
    );
    socket.once('data', (first: Buffer) => {
      socket.pause();
      socket.unshift(first);
      if (first[0] === TLS_HANDSHAKE_BYTE) {
        this.tlsServer?.emit('connection', socket);
      } else if (this.options.mode() === 'permissive') {
        this.acceptPlaintext(socket);
      } else {
        this.reject(socket, 'plaintext', 'strict mode accepts only mutual TLS', {
          failure: 'protocol',
        });
      }
    });
    socket.resume();
  }

  private onSecure(socket: TLSSocket): void {
    const raw = rawSocketOf(socket);
    raw.setTimeout(0);
    const started = acceptedAt.get(raw);
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
      this.serveSession(socket, raw, verdict);
      return;
    }
    const stage = this.deps.requestStage;
    const appTarget = this.appTarget(raw);
    if (stage?.judges(appTarget.port)) {
      const { id: connId, remove } = this.deps.live.track(DIRECTION, verdict, [socket]);
      this.deps.metrics.connections.inc({ direction: DIRECTION, result: 'allowed' });
      this.serveRequests(stage, socket, appTarget, connId, verdict.spiffeId, remove);
      return;
    }
    const app = this.dialApp(raw);
    const { id: connId, remove } = this.deps.live.track(DIRECTION, verdict, [socket, app]);
    this.deps.metrics.connections.inc({ direction: DIRECTION, result: 'allowed' });
    this.proxy(app, socket, connId, verdict.spiffeId, remove);
  }

  /**
   * Serves a verified, admitted peer's mux session: each stream is one
   * application connection, checked again against the current trust and
   * policy, forwarded, tracked and counted as a connection is.
   */
  private serveSession(socket: TLSSocket, raw: Socket, verdict: VerifiedPeer): void {
    const session = new MuxSession(socket, {
      role: 'server',
      onProtocolError: (err) => this.onProtocolError(err, verdict.spiffeId, socket),
    });
    this.sessions.add(session);
    this.deps.metrics.muxSessions.inc({ direction: DIRECTION });
    session.once('close', () => {
      this.sessions.delete(session);
      this.deps.metrics.muxSessions.dec({ direction: DIRECTION });
    });
    session.on('stream', (stream: MuxStream) => this.onStream(stream, session, raw, verdict));
  }

  private onStream(
    stream: MuxStream,
    session: MuxSession,
    raw: Socket,
    verdict: VerifiedPeer,
  ): void {
    this.streamCount++;
    stream.once('close', () => this.streamCount--);
    stream.on('error', () => stream.destroy());
    this.deps.metrics.muxStreams.inc({ direction: DIRECTION });
    const refusal = readmitStreamPeer(verdict, this.deps.trust(), {
      trustDomain: this.options.trustDomain,
      now: new Date(),
      recheck: this.deps.recheck,
    });
    if (refusal) {
      if (refusal.result === 'rejected') {
        this.deps.metrics.peerRejections.inc({ direction: DIRECTION, reason: refusal.reason });
      }
      this.deps.metrics.connections.inc({ direction: DIRECTION, result: refusal.result });
      this.deps.log.warn(
        {
          event: refusal.event,
          direction: DIRECTION,
          peer_id: verdict.spiffeId,
          reason: refusal.reason,
          detail: refusal.detail,
        },
        'session peer no longer admitted',
      );
      stream.reset(ResetCode.NOT_ADMITTED);
      session.close(GoawayCode.NOT_ADMITTED);
      return;
    }
    const target = this.streamTarget(raw, stream.port);
    if (!target.ok) {
      this.deps.metrics.connections.inc({ direction: DIRECTION, result: 'rejected' });
      this.deps.log.warn(
        {
          direction: DIRECTION,
          peer_id: verdict.spiffeId,
          reason: target.reason,
          detail: target.detail,
        },
        'stream refused',
      );
      stream.reset(ResetCode.REFUSED);
      return;
    }
    this.deps.metrics.connections.inc({ direction: DIRECTION, result: 'allowed' });
    const stage = this.deps.requestStage;
    if (stage?.judges(target.addr.port)) {
      const { id, remove } = this.deps.live.track(DIRECTION, verdict, [stream, session]);
      this.serveRequests(stage, stream, target.addr, id, verdict.spiffeId, remove);
      return;
    }
    const app = this.dialTarget(target.addr);
    // Told apart from a reset by the application side, so the dialer can log why.
    app.once('error', () => {
      if (app.connecting) stream.reset(ResetCode.APP_UNREACHABLE);
    });
    const { id, remove } = this.deps.live.track(DIRECTION, verdict, [stream, app, session]);
    this.proxy(app, stream, id, verdict.spiffeId, remove);
  }

  private onProtocolError(err: MuxProtocolError, peerId: string, socket: TLSSocket): void {
    this.deps.metrics.muxProtocolErrors.inc({ direction: DIRECTION, reason: err.reason });
    this.deps.log.warn(
      {
        event: 'mux.protocol_error',
        direction: DIRECTION,
        peer_id: peerId,
        reason: err.reason,
        detail: err.message,
        remote: socket.remoteAddress,
      },
      'mux protocol error',
    );
  }

  private acceptPlaintext(socket: Socket): void {
    socket.setTimeout(0);
    const connId = this.deps.live.allocateId();
    this.deps.metrics.connections.inc({ direction: DIRECTION, result: 'plaintext' });
    this.deps.log.info(
      { direction: DIRECTION, conn_id: connId, peer_id: 'plaintext', mode: 'permissive' },
      'plaintext connection accepted',
    );
    // Plaintext gets the same request rules as mTLS peers, only with no identity.
    const stage = this.deps.requestStage;
    const appTarget = this.appTarget(socket);
    if (stage?.judges(appTarget.port)) {
      this.serveRequests(stage, socket, appTarget, connId, undefined, () => undefined);
      return;
    }
    this.proxy(this.dialApp(socket), socket, connId, 'plaintext', () => undefined);
  }

  private serveRequests(
    stage: RequestStage,
    socket: Duplex & { bytesRead: number; bytesWritten: number },
    app: HostPort,
    connId: number,
    peerId: string | undefined,
    remove: () => void,
  ): void {
    const started = Date.now();
    this.deps.metrics.activeConnections.inc({ direction: DIRECTION });
    stage.serve(socket, { peerId, app, connId }, () => {
      remove();
      this.deps.metrics.activeConnections.dec({ direction: DIRECTION });
      this.deps.metrics.bytes.inc({ direction: DIRECTION, flow: 'from_peer' }, socket.bytesRead);
      this.deps.metrics.bytes.inc({ direction: DIRECTION, flow: 'to_peer' }, socket.bytesWritten);
      this.deps.log.debug(
        {
          direction: DIRECTION,
          conn_id: connId,
          peer_id: peerId ?? 'plaintext',
          bytes_in: socket.bytesRead,
          bytes_out: socket.bytesWritten,
          duration_ms: Date.now() - started,
        },
        'connection closed',
      );
    });
  }

  private proxy(
    app: Socket,
    peer: Duplex,
    connId: number,
    peerId: string,
    remove: () => void,
  ): void {
    const started = Date.now();
    this.deps.metrics.activeConnections.inc({ direction: DIRECTION });
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
      this.deps.metrics.activeConnections.dec({ direction: DIRECTION });
      this.deps.metrics.bytes.inc({ direction: DIRECTION, flow: 'from_peer' }, result.bytesToApp);
      this.deps.metrics.bytes.inc({ direction: DIRECTION, flow: 'to_peer' }, result.bytesFromApp);
      this.deps.log.debug(
        {
          direction: DIRECTION,
          conn_id: connId,
          peer_id: peerId,
          bytes_in: result.bytesToApp,
          bytes_out: result.bytesFromApp,
          duration_ms: Date.now() - started,
        },
        'connection closed',
      );
    });
  }

  /** Where a connection goes: the configured app address, or the original destination port. */
  private appTargetFor(
    socket: Socket,
  ): { ok: true; addr: HostPort } | { ok: false; reason: string; detail: string } {
    const readOriginal = this.deps.originalDst;
    if (this.options.appAddr) return { ok: true, addr: this.options.appAddr };
    if (!readOriginal) return { ok: false, reason: 'no-app', detail: 'no application address' };
    let port: number;
    try {
      port = readOriginal(socket).port;
    } catch (err) {
      return { ok: false, reason: 'no-original-dst', detail: (err as Error).message };
    }
    // A connection made straight to one of the agent's own ports was not
    // redirected and names no application port; forwarding it would loop.
    if (port === this.boundPort || this.options.agentPorts?.includes(port)) {
      return {
        ok: false,
        reason: 'loop',
        detail: `original destination port ${port} is the agent`,
      };
    }
    return { ok: true, addr: { host: '127.0.0.1', port } };
  }

  /**
   * Where a stream goes: the configured app address, or with interception
   * the port its OPEN names (the original destination port the dialer saw),
   * never one of the agent's own.
   */
  private streamTarget(
    raw: Socket,
    port: number,
  ): { ok: true; addr: HostPort } | { ok: false; reason: string; detail: string } {
    if (this.options.appAddr) return { ok: true, addr: this.options.appAddr };
    if (port === 0) return { ok: true, addr: this.appTarget(raw) };
    if (port === this.boundPort || this.options.agentPorts?.includes(port)) {
      return { ok: false, reason: 'loop', detail: `stream port ${port} is the agent` };
    }
    return { ok: true, addr: { host: '127.0.0.1', port } };
  }

  private appTarget(raw: Socket | undefined): HostPort {
    const target = (raw && appTargets.get(raw)) ?? this.options.appAddr;
    if (!target) throw new Error('no application target for an accepted connection');
    return target;
  }

  private dialApp(raw: Socket | undefined): Socket {
    return this.dialTarget(this.appTarget(raw));
  }

  private dialTarget(target: HostPort): Socket {
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
   * Refuses a connection: logs `peer.rejected` and counts it, and when the
   * refusal is a failed handshake also logs `handshake.failed`, once per
   * connection (the raw socket's timeout and the TLS server's may both fire).
   */
  private reject(
    socket: Socket,
    reason: string,
    detail: string,
    extra: { peerId?: string | undefined; failure?: HandshakeFailure } = {},
  ): void {
    const { peerId, failure } = extra;
    const raw = rawSocketOf(socket);
    if (refused.has(raw)) {
      socket.destroy();
      return;
    }
    refused.add(raw);
    this.deps.metrics.connections.inc({ direction: DIRECTION, result: 'rejected' });
    this.deps.metrics.peerRejections.inc({ direction: DIRECTION, reason });
    this.deps.log.warn(
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
      logHandshakeFailure(this.deps.log, {
        direction: DIRECTION,
        reason: failure,
        remoteAddress: socket.remoteAddress ?? raw.remoteAddress,
        peerId,
        detail,
      });
    }
    socket.destroy();
  }
}

const acceptedAt = new WeakMap<Socket, number>();
const appTargets = new WeakMap<Socket, HostPort>();
/** Raw connections already refused, so a second timer or error does not log them again. */
const refused = new WeakSet<Socket>();

/** The accepted TCP socket under a TLS socket (the socket itself when it is not wrapped). */
function rawSocketOf(socket: Socket): Socket {
  return (socket as unknown as { _parent?: Socket })._parent ?? socket;
}

/** Names a handshake failure by what the peer did wrong. */
function handshakeReason(err: Error & { code?: string }): string {
  const text = `${err.code ?? ''} ${err.message}`.toLowerCase();
  if (text.includes('timed out') || text.includes('timeout')) return 'timeout';
  if (text.includes('protocol') || text.includes('version')) return 'tls-version';
  if (text.includes('wrong_version_number') || text.includes('http_request')) return 'plaintext';
  return 'handshake-failed';
}
