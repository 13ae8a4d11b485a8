import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Logger } from '../../certs/log.js';
import type { AgentMetrics, Direction } from '../metrics.js';
import {
  GoawayCode,
  MuxSession,
  ResetCode,
  type MuxProtocolError,
  type MuxStream,
} from '../mux/index.js';
import type { Decision } from '../policy/index.js';
import type { LiveConnections, TrustFacts } from '../tls/index.js';
import type { AppForwarder } from './app-forwarder.js';
import type { AppTargets } from './app-target.js';
import type { RequestStage } from './inbound-deps.js';
import { readmitStreamPeer, type VerifiedPeer } from './stream-admission.js';

const DIRECTION: Direction = 'inbound';

/** What the inbound mux sessions are given by the inbound proxy. */
export interface MuxSessionsDeps {
  trustDomain: string;
  trust: () => TrustFacts | undefined;
  /** Decides a peer without counting or logging, for each new stream. */
  recheck: (peerId: string) => Decision;
  live: LiveConnections;
  log: Logger;
  metrics: AgentMetrics;
  requestStage: RequestStage | undefined;
  targets: AppTargets;
  forwarder: AppForwarder;
}

/**
 * The inbound mux sessions of verified, admitted peers: each stream is one
 * application connection, checked again against the current trust and
 * policy, forwarded, tracked and counted as a connection is. A peer no longer
 * admitted gets its stream reset and the session closed with GOAWAY.
 */
export class MuxSessions {
  private readonly sessions = new Set<MuxSession>();
  private streams = 0;

  constructor(private readonly deps: MuxSessionsDeps) {}

  /** How many sessions are open. */
  get sessionCount(): number {
    return this.sessions.size;
  }

  /** How many streams are open over all sessions. */
  get streamCount(): number {
    return this.streams;
  }

  /** Serves `socket`'s mux session for the peer of `verdict`; `raw` is its accepted TCP socket. */
  serve(socket: TLSSocket, raw: Socket, verdict: VerifiedPeer): void {
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

  /** Tells every session's dialer (GOAWAY) to open no new streams; each closes with its last. */
  drainAll(): void {
    for (const session of this.sessions) session.drain();
  }

  private onStream(
    stream: MuxStream,
    session: MuxSession,
    raw: Socket,
    verdict: VerifiedPeer,
  ): void {
    this.streams++;
    stream.once('close', () => this.streams--);
    stream.on('error', () => stream.destroy());
    this.deps.metrics.muxStreams.inc({ direction: DIRECTION });
    const refusal = readmitStreamPeer(verdict, this.deps.trust(), {
      trustDomain: this.deps.trustDomain,
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
          ...(refusal.decision
            ? {
                rule: refusal.decision.rule,
                layer: refusal.decision.layer,
                mesh_version: refusal.decision.meshVersion,
              }
            : {}),
        },
        'session peer no longer admitted',
      );
      stream.reset(ResetCode.NOT_ADMITTED);
      session.close(GoawayCode.NOT_ADMITTED);
      return;
    }

    const target = this.deps.targets.forStream(raw, stream.port);
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
      this.deps.forwarder.serveRequests(stage, stream, target.addr, id, verdict.spiffeId, remove);
      return;
    }
    const app = this.deps.forwarder.dial(target.addr);
    // Told apart from a reset by the application side, so the dialer can log why.
    app.once('error', () => {
      if (app.connecting) stream.reset(ResetCode.APP_UNREACHABLE);
    });
    const { id, remove } = this.deps.live.track(DIRECTION, verdict, [stream, app, session]);
    this.deps.forwarder.splice(app, stream, id, verdict.spiffeId, remove);
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
}
