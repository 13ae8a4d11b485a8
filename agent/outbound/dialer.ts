import { connect, type ConnectionOptions, type SecureContext, type TLSSocket } from 'node:tls';
import { isIP } from 'node:net';
import { PalisadeError } from '../../certs/errors.js';
import type { TlsContextHolder, TrustFacts, PeerRejection } from '../tls/index.js';
import { verifyChain, verifyPeer } from '../tls/index.js';

/** Longest a dial (TCP connect plus handshake) may take, in milliseconds. */
export const DEFAULT_DIAL_TIMEOUT_MS = 5_000;

/** Cached TLS sessions per peer address, so repeat dials resume instead of a full handshake. */
const MAX_CACHED_SESSIONS = 256;

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
 * PeerRejectedError (verification) or PalisadeError DIAL_FAILED (network).
 */
export class PeerDialer {
  private readonly sessions = new Map<string, CachedSession>();

  constructor(private readonly ctx: DialContext) {}

  dial(host: string, port: number, expectedId?: string): Promise<DialedPeer> {
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
        // Half-close passes through the proxy (Node supports it; the types omit it).
        allowHalfOpen: true,
      };
      const socket = connect(options);
      socket.setNoDelay(true);
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new PalisadeError('DIAL_FAILED', `dial ${key} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      // TLS 1.3 tickets arrive after the handshake, so the chain verified below
      // is known by then; a resumed session presents no certificate and stands
      // on the chain verified when its ticket was issued.
      let verified: { chainDer: Buffer[]; notAfter: Date } | undefined;
      socket.on('session', (ticket: Buffer) => {
        if (!verified) return;
        const nowMs = Date.now();
        const resumeUntilMs = nowMs + (verified.notAfter.getTime() - nowMs) / 2;
        this.remember(key, { ticket, context, chainDer: verified.chainDer, resumeUntilMs });
      });
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(new PalisadeError('DIAL_FAILED', `dial ${key}: ${err.message}`, { cause: err }));
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
        verified = { chainDer: verdict.chainDer, notAfter: verdict.notAfter };
        resolve({
          socket,
          spiffeId: verdict.spiffeId,
          serialHex: verdict.serialHex,
          notAfter: verdict.notAfter,
          chainSerials: verdict.chainSerials,
          chainDer: verdict.chainDer,
          handshakeMs: performance.now() - started,
          resumed: socket.isSessionReused(),
        });
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
