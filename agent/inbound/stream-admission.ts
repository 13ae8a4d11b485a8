import type { Decision } from '../policy/index.js';
import { verifyChain, type PeerVerdict, type TrustFacts } from '../tls/index.js';

/** A peer that passed verification when its session was accepted. */
export type VerifiedPeer = Extract<PeerVerdict, { ok: true }>;

/** Why a session's peer may not open another stream, as logged and counted. */
export interface StreamRefusal {
  /** The `palisade_agent_connections_total` result: rejected (trust) or denied (policy). */
  result: 'rejected' | 'denied';
  event: 'peer.rejected' | 'policy.denied';
  reason: string;
  detail: string;
  /** The policy decision that denied the peer, when the policy refused it. */
  decision?: Decision;
}

/**
 * Checks a mux session's peer again before it opens a stream: its chain
 * against the trust in force now (revocation, bundle, expiry) and the policy
 * in force now, so a session admitted earlier carries no connection that a
 * new TLS connection would not get. Returns undefined when the stream may go.
 */
export function readmitStreamPeer(
  peer: VerifiedPeer,
  trust: TrustFacts | undefined,
  options: { trustDomain: string; now: Date; recheck: (peerId: string) => Decision },
): StreamRefusal | undefined {
  if (!trust) {
    return { result: 'rejected', event: 'peer.rejected', reason: 'not-ready', detail: 'no trust' };
  }
  const again = verifyChain(peer.chainDer, trust, options);
  if (!again.ok) {
    return {
      result: 'rejected',
      event: 'peer.rejected',
      reason: again.reason,
      detail: again.detail,
    };
  }
  const decision = options.recheck(peer.spiffeId);
  if (decision.allowed) return undefined;
  return {
    result: 'denied',
    event: 'policy.denied',
    reason: decision.reason,
    detail: decision.explanation,
    decision,
  };
}
