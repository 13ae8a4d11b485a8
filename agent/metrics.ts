import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/** Direction of a proxied connection. */
export type Direction = 'inbound' | 'outbound';

/** The agent's metrics, registered on the registry its composition root owns. */
export interface AgentMetrics {
  connections: Counter<'direction' | 'result'>;
  activeConnections: Gauge<'direction'>;
  bytes: Counter<'direction' | 'flow'>;
  handshakeSeconds: Histogram<'direction'>;
  policyDenials: Counter<'peer_id' | 'reason' | 'dry_run'>;
  peerRejections: Counter<'direction' | 'reason'>;
  certExpirySeconds: Gauge;
  rotations: Counter<'result'>;
  trustVersion: Gauge;
  revokedDisconnects: Counter<'reason'>;
  httpRequests: Counter<'result'>;
  httpDenials: Counter<'reason'>;
}

/** Creates and registers the agent metrics on `registry`. */
export function createAgentMetrics(registry: Registry): AgentMetrics {
  const registers = [registry];
  return {
    connections: new Counter({
      name: 'palisade_agent_connections_total',
      help: 'Connections by direction and result (allowed, denied, rejected, plaintext, error, ...).',
      labelNames: ['direction', 'result'],
      registers,
    }),
    activeConnections: new Gauge({
      name: 'palisade_agent_active_connections',
      help: 'Connections being proxied now.',
      labelNames: ['direction'],
      registers,
    }),
    bytes: new Counter({
      name: 'palisade_agent_bytes_total',
      help: 'Bytes proxied, by direction and flow (from_peer, to_peer).',
      labelNames: ['direction', 'flow'],
      registers,
    }),
    handshakeSeconds: new Histogram({
      name: 'palisade_agent_handshake_duration_seconds',
      help: 'Mutual-TLS handshake time, by direction.',
      labelNames: ['direction'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers,
    }),
    policyDenials: new Counter({
      name: 'palisade_agent_policy_denials_total',
      help: 'Peers refused (or, in dry run, that would be refused) by policy, by peer identity.',
      labelNames: ['peer_id', 'reason', 'dry_run'],
      registers,
    }),
    peerRejections: new Counter({
      name: 'palisade_agent_peer_rejections_total',
      help: 'Peers refused before policy, by reason: untrusted, revoked, expired, no certificate, ...',
      labelNames: ['direction', 'reason'],
      registers,
    }),
    certExpirySeconds: new Gauge({
      name: 'palisade_agent_cert_expiry_timestamp_seconds',
      help: 'Unix time at which the workload certificate expires.',
      registers,
    }),
    rotations: new Counter({
      name: 'palisade_agent_cert_rotations_total',
      help: 'Certificate rotations by result.',
      labelNames: ['result'],
      registers,
    }),
    trustVersion: new Gauge({
      name: 'palisade_agent_trust_version',
      help: 'Version of the trust bundle and revocation set in force.',
      registers,
    }),
    revokedDisconnects: new Counter({
      name: 'palisade_agent_closed_connections_total',
      help: 'Live connections closed as their peer was revoked, untrusted, expired or not allowed.',
      labelNames: ['reason'],
      registers,
    }),
    httpRequests: new Counter({
      name: 'palisade_agent_http_requests_total',
      help: 'Inbound HTTP requests judged by the request rules, by result (allowed, denied).',
      labelNames: ['result'],
      registers,
    }),
    httpDenials: new Counter({
      name: 'palisade_agent_http_denials_total',
      help: 'Inbound HTTP requests refused, by reason (token-missing, missing-scope, ...).',
      labelNames: ['reason'],
      registers,
    }),
  };
}
