import type { Logger } from '../../certs/log.js';
import type { AgentMetrics, Direction } from '../metrics.js';

/** Longest timer Node accepts, in milliseconds (about 24.8 days). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** A proxied connection whose peer was admitted with a certificate. */
export interface LiveConnection {
  readonly id: number;
  readonly direction: Direction;
  readonly peerId: string;
  readonly serialHex: string;
  readonly chainSerials: readonly string[];
  readonly chainDer: readonly Buffer[];
  readonly notAfter: Date;
  /** Ends the connection; `reason` is logged and counted by the owner. */
  close(reason: string): void;
}

/** The verified facts about a peer a connection was admitted with. */
export interface AdmittedPeer {
  readonly spiffeId: string;
  readonly serialHex: string;
  readonly chainSerials: readonly string[];
  readonly chainDer: readonly Buffer[];
  readonly notAfter: Date;
}

/**
 * The agent's live mutual-TLS connections. A connection never outlives the
 * credential it was admitted with: each is closed when its peer's certificate
 * expires, and callers close those that a new trust state or policy no
 * longer admits.
 */
export class LiveConnections {
  private readonly connections = new Map<number, { conn: LiveConnection; timer: NodeJS.Timeout }>();
  private nextId = 1;

  constructor(private readonly deps: { log: Logger; metrics: AgentMetrics }) {}

  /** A fresh connection id, unique for this process. */
  allocateId(): number {
    return this.nextId++;
  }

  /**
   * Tracks a proxied connection admitted with `peer`. When the agent closes
   * it (revocation, lost trust, policy, expiry) the closing is counted, logged
   * as a security event, and every socket in `sockets` is destroyed. Returns
   * the connection id and the function that stops tracking it.
   */
  track(
    direction: Direction,
    peer: AdmittedPeer,
    sockets: readonly { destroy(): void }[],
  ): { id: number; remove: () => void } {
    const id = this.allocateId();
    const remove = this.add({
      id,
      direction,
      peerId: peer.spiffeId,
      serialHex: peer.serialHex,
      chainSerials: peer.chainSerials,
      chainDer: peer.chainDer,
      notAfter: peer.notAfter,
      close: (reason) => {
        this.deps.metrics.revokedDisconnects.inc({ reason });
        this.deps.log.warn(
          {
            event: closeEvent(reason),
            direction,
            conn_id: id,
            peer_id: peer.spiffeId,
            serial: peer.serialHex,
            reason,
          },
          'live connection closed',
        );
        for (const socket of sockets) socket.destroy();
      },
    });
    return { id, remove };
  }

  /** Tracks `conn` until the returned function is called; schedules its expiry close. */
  add(conn: LiveConnection, nowMs: number = Date.now()): () => void {
    const delayMs = Math.min(Math.max(0, conn.notAfter.getTime() - nowMs), MAX_TIMER_MS);
    const timer = setTimeout(() => conn.close('peer-cert-expired'), delayMs);
    timer.unref();
    this.connections.set(conn.id, { conn, timer });
    return () => {
      clearTimeout(timer);
      this.connections.delete(conn.id);
    };
  }

  /** Closes every connection for which `reasonFor` returns a reason; returns how many. */
  closeWhere(reasonFor: (conn: LiveConnection) => string | undefined): number {
    let closed = 0;
    for (const { conn } of [...this.connections.values()]) {
      const reason = reasonFor(conn);
      if (reason) {
        conn.close(reason);
        closed++;
      }
    }
    return closed;
  }

  /** How many connections are tracked, optionally in one direction. */
  count(direction?: Direction): number {
    if (!direction) return this.connections.size;
    let n = 0;
    for (const { conn } of this.connections.values()) if (conn.direction === direction) n++;
    return n;
  }
}

/** The security event logged when the agent closes a live connection for `reason`. */
export function closeEvent(reason: string): string {
  if (reason === 'peer-revoked') return 'peer.revoked';
  if (reason === 'peer-cert-expired') return 'peer.expired';
  // A mesh verdict and the workload's own both deny by policy.
  if (reason === 'policy-denied' || reason === 'mesh-policy-denied') return 'policy.denied';
  return 'peer.untrusted';
}
