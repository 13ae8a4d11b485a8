import { MAX_DETAIL_JSON_BYTES } from '../../certs/events/event-input.js';
import type { SecurityEventMessage } from '../../proto/index.js';

/**
 * The security events an agent forwards to the CA's mesh-wide feed, by the
 * `event` field of their log line. Chosen as what an operator asks "who was
 * refused, by whom and why" and "is this agent's identity healthy": policy
 * denials and their dry-run twins, refused and disconnected peers, failed
 * handshakes, refused HTTP requests, policy changes and refusals, and
 * certificate rotations and failures. Routine lines (`trust.updated`,
 * `agent.ready`, watch reconnections) stay in the local log only.
 */
export const FORWARDED_EVENTS: ReadonlySet<string> = new Set([
  'policy.denied',
  'policy.dry_run_denied',
  'policy.applied',
  'policy.rejected',
  'policy.http_ignored',
  'policy.mode_overridden',
  'policy.mesh_applied',
  'policy.mesh_rejected',
  'peer.rejected',
  'peer.revoked',
  'peer.untrusted',
  'peer.expired',
  'handshake.failed',
  'http.denied',
  'cert.rotated',
  'cert.rotation_failed',
  'cert.renewal_refused',
  'cert.revoked',
  'cert.expired',
  'trust.rejected',
  'events.dropped',
]);

// The CA's limit on `detail_json`, in UTF-8 bytes: a longer one becomes a
// note of its size. Imported from the module itself, not certs/events/index,
// which would bring the CA's store into the agent.
export { MAX_DETAIL_JSON_BYTES };

/** Fields lifted out of the log line into their own SecurityEvent fields. */
const LIFTED = new Set(['event', 'peer_id', 'direction', 'reason', 'rule']);

/**
 * Turns the fields of a logged security event into the wire message: `event`
 * becomes `kind`, `peer_id`, `direction`, `reason` and `rule` their own
 * fields, and every other field goes into `detail_json`, as logged.
 */
export function toSecurityEvent(
  fields: Readonly<Record<string, unknown>>,
  atUnixMs: number,
): SecurityEventMessage {
  const detail: Record<string, unknown> = {};
  for (const key of Object.keys(fields)) {
    if (!LIFTED.has(key)) detail[key] = fields[key];
  }
  return {
    kind: String(fields['event']),
    atUnixMs,
    peerId: text(fields['peer_id']),
    direction: text(fields['direction']),
    reason: text(fields['reason']),
    rule: text(fields['rule']),
    detailJson: detailJson(detail),
  };
}

function text(value: unknown): string {
  return typeof value === 'string' ? value : '';
}

function detailJson(detail: Record<string, unknown>): string {
  let json: string;
  try {
    json = JSON.stringify(detail);
  } catch (err) {
    // A field that cannot be serialised (a cycle, a BigInt) loses the detail, not the event.
    return JSON.stringify({ unserialisable: (err as Error).message });
  }
  const bytes = Buffer.byteLength(json, 'utf8');
  if (bytes <= MAX_DETAIL_JSON_BYTES) return json;
  return JSON.stringify({ truncated: true, bytes });
}
