import type { SecureContext } from 'node:tls';
import { MUX_ALPN, MuxSession, type MuxProtocolError, type MuxStream } from '../mux/index.js';
import { verifyChain } from '../tls/index.js';
import type { DialContext, DialedPeer, PeerDialer } from './dialer.js';

/** How long a session with no stream stays open for the next one, in milliseconds. */
export const DEFAULT_SESSION_IDLE_MS = 30_000;

/**
 * A verified peer an application connection is carried to. Without `mux`
 * the connection owns `socket`; with it, the connection is `mux.stream` over
 * a shared session, and `socket` is that session's.
 */
export interface PeerChannel extends DialedPeer {
  mux?: {
    stream: MuxStream;
    session: MuxSession;
    /** Whether this connection's open dialled the session (a handshake was made for it). */
    isNewSession: boolean;
  };
}

/** Opens peer channels: what explicit upstreams and transparent interception dial through. */
export interface PeerLink {
  dial(host: string, port: number, expectedId?: string): Promise<PeerChannel>;
}

/** What the session pool needs. */
export interface PeerSessionsDeps {
  dialer: PeerDialer;
  context: DialContext;
  /** Multiplex application connections over one session per peer (`--peer-mux`). */
  isMuxOn: boolean;
  idleTimeoutMs?: number;
  /** A session opened or closed; `open` is the count now. */
  onSessionCount?: (open: number) => void;
  /** The peer at `target` broke the mux protocol; the session was closed. */
  onProtocolError?: (error: MuxProtocolError, target: string) => void;
}

/** A shared session and the facts it was verified and opened with. */
interface PooledSession {
  mux: MuxSession;
  peer: DialedPeer;
  /** Our client context when it was made; after a rotation it takes no new streams. */
  context: SecureContext;
  /**
   * Until when (epoch ms) it takes new streams: half-way from its opening to
   * the peer leaf's notAfter, as for resumed tickets, so that no stream starts
   * on a certificate about to expire.
   */
  openUntilMs: number;
  idleTimer: NodeJS.Timeout | undefined;
}

/**
 * The outbound side of `palisade-mux/1`: one mutual-TLS session per (peer
 * address, expected identity), opened lazily by the first connection and
 * shared by the next ones, each a stream. A session is verified once, as a
 * dial is; before each new stream its peer chain is checked again against
 * the current trust (revocation, bundle), and it is drained (no new streams,
 * closed with its last one) after our credential rotated or past half its
 * peer certificate's remaining life. Idle sessions close after a timeout. A
 * peer that does not choose the mux ALPN gets one TLS connection per
 * application connection, as with the mux off.
 */
export class PeerSessions implements PeerLink {
  private readonly pools = new Map<string, PooledSession[]>();
  private readonly pending = new Map<string, Promise<DialedPeer>>();
  private openCount = 0;

  constructor(private readonly deps: PeerSessionsDeps) {}

  /** Sessions open now. */
  get openSessions(): number {
    return this.openCount;
  }

  /**
   * A channel to the verified peer at `host:port` for one application
   * connection; rejects as PeerDialer.dial does.
   */
  async dial(host: string, port: number, expectedId?: string): Promise<PeerChannel> {
    if (!this.deps.isMuxOn) return this.deps.dialer.dial(host, port, expectedId);
    const key = `${host}:${port}|${expectedId ?? ''}`;
    for (;;) {
      const reused = this.openOnPooled(key, port, expectedId);
      if (reused) return reused;
      const inFlight = this.pending.get(key);
      if (!inFlight) break;
      // Another connection is dialling this peer: share its session once up.
      const peer = await inFlight;
      if (peer.socket.alpnProtocol !== MUX_ALPN) {
        return this.deps.dialer.dial(host, port, expectedId, { alpn: [MUX_ALPN] });
      }
    }
    const dialing = this.deps.dialer.dial(host, port, expectedId, { alpn: [MUX_ALPN] });
    this.pending.set(key, dialing);
    let peer: DialedPeer;
    try {
      peer = await dialing;
    } finally {
      this.pending.delete(key);
    }
    if (peer.socket.alpnProtocol !== MUX_ALPN) return peer;
    const pooled = this.pool(key, peer);
    return {
      ...peer,
      mux: { stream: pooled.mux.openStream(port), session: pooled.mux, isNewSession: true },
    };
  }

  /** Closes every session and its streams (agent stop). */
  closeAll(): void {
    for (const sessions of this.pools.values()) for (const s of sessions) s.mux.destroy();
  }

  /** A stream on a usable pooled session of `key`; drains those no longer fit for new streams. */
  private openOnPooled(
    key: string,
    port: number,
    expectedId: string | undefined,
  ): PeerChannel | undefined {
    const sessions = this.pools.get(key);
    if (!sessions) return undefined;
    for (const pooled of [...sessions]) {
      if (!this.isFresh(pooled, expectedId)) {
        this.unpool(key, pooled);
        pooled.mux.drain();
        continue;
      }
      if (!pooled.mux.isAvailable) continue;
      clearTimeout(pooled.idleTimer);
      pooled.idleTimer = undefined;
      return {
        ...pooled.peer,
        mux: { stream: pooled.mux.openStream(port), session: pooled.mux, isNewSession: false },
      };
    }
    return undefined;
  }

  /**
   * Whether a session may still take new streams: same credential, peer
   * still trusted, not late.
   */
  private isFresh(pooled: PooledSession, expectedId: string | undefined): boolean {
    if (pooled.mux.closed || pooled.context !== this.deps.context.tls.client()) return false;
    if (Date.now() >= pooled.openUntilMs) return false;
    const trust = this.deps.context.trust();
    if (!trust) return false;
    const verdict = verifyChain(pooled.peer.chainDer, trust, {
      trustDomain: this.deps.context.trustDomain,
      now: new Date(),
      expectedId,
    });
    return verdict.ok;
  }

  private pool(key: string, peer: DialedPeer): PooledSession {
    const target = key.slice(0, key.indexOf('|'));
    const mux = new MuxSession(peer.socket, {
      role: 'client',
      onProtocolError: (err) => this.deps.onProtocolError?.(err, target),
    });
    const nowMs = Date.now();
    const pooled: PooledSession = {
      mux,
      peer,
      context: this.deps.context.tls.client(),
      openUntilMs: nowMs + (peer.notAfter.getTime() - nowMs) / 2,
      idleTimer: undefined,
    };
    const idleMs = this.deps.idleTimeoutMs ?? DEFAULT_SESSION_IDLE_MS;
    mux.on('idle', () => {
      clearTimeout(pooled.idleTimer);
      pooled.idleTimer = setTimeout(() => {
        if (mux.streamCount === 0) mux.close();
      }, idleMs).unref();
    });
    mux.once('close', () => {
      clearTimeout(pooled.idleTimer);
      this.unpool(key, pooled);
      this.deps.onSessionCount?.(--this.openCount);
    });
    this.deps.onSessionCount?.(++this.openCount);
    const sessions = this.pools.get(key) ?? [];
    sessions.push(pooled);
    this.pools.set(key, sessions);
    return pooled;
  }

  private unpool(key: string, pooled: PooledSession): void {
    const sessions = this.pools.get(key);
    if (!sessions) return;
    const rest = sessions.filter((s) => s !== pooled);
    if (rest.length > 0) this.pools.set(key, rest);
    else this.pools.delete(key);
  }
}
