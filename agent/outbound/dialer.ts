import { connect, type ConnectionOptions, type SecureContext, type TLSSocket } from 'node:tls';
import { isIP } from 'node:net';
import { PalisadeError } from '../../certs/errors.js';
import type {
  HandshakeFailure,
  PeerRejection,
  TlsContextHolder,
  TrustFacts,
} from '../tls/index.js';
import { failureOfTlsError, verifyChain, verifyPeer } from '../tls/index.js';

/** Longest a dial (TCP connect plus handshake) may take, in milliseconds. */
export const DEFAULT_DIAL_TIMEOUT_MS = 5_000;

/** Cached TLS sessions per peer address, so repeat dials resume instead of a full handshake. */
const MAX_CACHED_SESSIONS = 256;

/**
 * Age (ms) after which a cached ticket is replaced by the next one a
 * connection receives; under Node's 300 s ticket lifetime, so a busy peer is
 * always resumed. Younger tickets are reused as they are: TLS 1.3 tickets
 * stay valid for many resumptions, and not asking for each connection's
 * tickets spares serialising two sessions (with the peer certificate) per
 * connection.
 */
const TICKET_REFRESH_MS = 60_000;

/** A TLS session ticket and the peer chain verified when it was issued. */
interface CachedSession {
  ticket: Buffer;
  chainDer: Buffer[];
  /**
   * The client context (our own certificate) the session was made with. The
   * peer sees that certificate again on resumption, so a session made before
   * our last rotation is never resumed: the old certificate may have expired.
   */
  context: SecureContext;
  /** When (epoch ms) the ticket was received. */
  storedAtMs: number;
  /**
   * Until when (epoch ms) the session is resumed: half-way from when it was
   * made to the verified peer leaf's notAfter. A resumed connection is held to
   * that leaf's expiry, so resuming late would make short-lived connections;
   * past the half-way mark a full handshake gets the peer's newer certificate.
   */
  resumeUntilMs: number;
}

/** A dial refused because the peer failed verification. */
export class PeerRejectedError extends PalisadeError {
  readonly reason: PeerRejection;
  readonly peerId: string | undefined;

  constructor(reason: PeerRejection, detail: string, peerId: string | undefined) {
    super('PEER_REJECTED', `peer rejected (${reason}): ${detail}`);
    this.name = 'PeerRejectedError';
    this.reason = reason;
    this.peerId = peerId;
  }
}

/**
 * A dial whose TCP connection was made but whose TLS handshake failed or
 * timed out (an alert from the peer, a protocol mismatch, a silent peer).
 */
export class HandshakeFailedError extends PalisadeError {
  readonly failure: HandshakeFailure;

  constructor(failure: HandshakeFailure, message: string, options?: { cause?: unknown }) {
    super('HANDSHAKE_FAILED', message, options);
    this.name = 'HandshakeFailedError';
    this.failure = failure;
  }
}

/** A peer connection that passed verification. */
export interface DialedPeer {
  socket: TLSSocket;
  spiffeId: string;
  serialHex: string;
  notAfter: Date;
  chainSerials: string[];
  chainDer: Buffer[];
  handshakeMs: number;
  resumed: boolean;
}

/** What the dialer needs, shared by explicit upstreams and transparent interception. */
export interface DialContext {
  tls: TlsContextHolder;
  trust: () => TrustFacts | undefined;
  trustDomain: string;
  timeoutMs?: number;
}

/**
 * Dials a peer agent's inbound port with mutual TLS 1.3 and verifies it: an
 * SVID of the trust domain, chaining to the bundle, unrevoked and, when
 * `expectedId` is given, exactly that identity. Rejects with
 * PeerRejectedError (verification), HandshakeFailedError (TLS failed after
 * the TCP connection was made) or PalisadeError DIAL_FAILED (network). With
 * `offer.alpn` it offers those protocols; the socket's `alpnProtocol` says which
 * the peer chose.
 */
export class PeerDialer {
  private readonly sessions = new Map<string, CachedSession>();

  constructor(private readonly ctx: DialContext) {}

  dial(
    host: string,
    port: number,
    expectedId?: string,
    offer: { alpn?: readonly string[] } = {},
  ): Promise<DialedPeer> {
    const key = `${host}:${port}`;
    const started = performance.now();
    const timeoutMs = this.ctx.timeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS;
    return new Promise((resolve, reject) => {
      const context = this.ctx.tls.client();
      let session = this.sessions.get(key);
      if (session && (session.context !== context || session.resumeUntilMs <= Date.now())) {
        this.sessions.delete(key);
        session = undefined;
      }
      const options: ConnectionOptions & { allowHalfOpen: boolean } = {
        host,
        port,
        secureContext: context,
        minVersion: 'TLSv1.3',
        rejectUnauthorized: false,
        // Identity is checked against the SPIFFE ID below, never a host name.
        checkServerIdentity: () => undefined,
        ...(isIP(host) ? {} : { servername: host }),
        ...(session ? { session: session.ticket } : {}),
        // Without ALPN the peer serves one application connection per TLS connection.
        ...(offer.alpn ? { ALPNProtocols: [...offer.alpn] } : {}),
        // Half-close passes through the proxy (Node supports it; the types omit it).
        allowHalfOpen: true,
      };
      const socket = connect(options);
      socket.setNoDelay(true);
      let isConnected = false;
      socket.once('connect', () => (isConnected = true));
      const timer = setTimeout(() => {
        socket.destroy();
        const message = `dial ${key} timed out after ${timeoutMs} ms`;
        reject(
          isConnected
            ? new HandshakeFailedError('handshake-timeout', message)
            : new PalisadeError('DIAL_FAILED', message),
        );
      }, timeoutMs);
      socket.once('error', (err) => {
        clearTimeout(timer);
        const message = `dial ${key}: ${err.message}`;
        reject(
          isConnected
            ? new HandshakeFailedError(failureOfTlsError(err), message, { cause: err })
            : new PalisadeError('DIAL_FAILED', message, { cause: err }),
        );
      });
      socket.once('secureConnect', () => {
        clearTimeout(timer);
        const trust = this.ctx.trust();
        if (!trust) {
          socket.destroy();
          reject(new PalisadeError('NOT_READY', 'no trust bundle loaded yet'));
          return;
        }
        const options = { trustDomain: this.ctx.trustDomain, now: new Date(), expectedId };
        let verdict = verifyPeer(socket, trust, options);
        if (
          !verdict.ok &&
          verdict.reason === 'no-certificate' &&
          socket.isSessionReused() &&
          session
        ) {
          verdict = verifyChain(session.chainDer, trust, options);
        }
        if (!verdict.ok) {
          socket.destroy();
          this.sessions.delete(key);
          reject(new PeerRejectedError(verdict.reason, verdict.detail, verdict.spiffeId));
          return;
        }
        const isResumed = socket.isSessionReused();
        // An offered ticket the peer did not take is stale (its ticket keys
        // changed, or it expired there): no other dial should offer it.
        if (session && !isResumed && this.sessions.get(key) === session) this.sessions.delete(key);
        if (!isResumed || !session) {
          const nowMs = Date.now();
          // Half-way from now to the verified peer leaf's notAfter.
          const resumeUntilMs = nowMs + (verdict.notAfter.getTime() - nowMs) / 2;
          this.keepTicket(socket, key, { context, chainDer: verdict.chainDer, resumeUntilMs });
        } else if (Date.now() - session.storedAtMs >= TICKET_REFRESH_MS) {
          // A resumed session's new ticket stands on the same peer chain, so it
          // keeps the original deadline rather than pushing it towards expiry.
          this.keepTicket(socket, key, session);
        }
        resolve({
          socket,
          spiffeId: verdict.spiffeId,
          serialHex: verdict.serialHex,
          notAfter: verdict.notAfter,
          chainSerials: verdict.chainSerials,
          chainDer: verdict.chainDer,
          handshakeMs: performance.now() - started,
          resumed: isResumed,
        });
      });
    });
  }

  /**
   * Keeps the next ticket `socket` receives for later dials to `key`, with the
   * verified peer chain and deadline of `facts`. TLS 1.3 tickets arrive after
   * the handshake, so the chain verified for this connection is known by
   * then; a resumed session presents no certificate and stands on the chain
   * verified when its first ticket was issued.
   */
  private keepTicket(
    socket: TLSSocket,
    key: string,
    facts: Pick<CachedSession, 'context' | 'chainDer' | 'resumeUntilMs'>,
  ): void {
    socket.once('session', (ticket: Buffer) => {
      this.remember(key, {
        ticket,
        context: facts.context,
        chainDer: facts.chainDer,
        resumeUntilMs: facts.resumeUntilMs,
        storedAtMs: Date.now(),
      });
    });
  }

  private remember(key: string, session: CachedSession): void {
    if (this.sessions.size >= MAX_CACHED_SESSIONS && !this.sessions.has(key)) {
      const oldest = this.sessions.keys().next().value;
      if (oldest !== undefined) this.sessions.delete(oldest);
    }
    this.sessions.set(key, session);
  }
}
