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
  meshPolicyVersion: Gauge;
  policyLayerDenials: Counter<'layer' | 'dry_run'>;
  muxSessions: Gauge<'direction'>;
  muxStreams: Counter<'direction'>;
  muxProtocolErrors: Counter<'direction' | 'reason'>;
}

/** The event feed's counts as the metrics read them at each scrape. */
export interface EventFeedCounts {
  readonly queued: number;
  readonly sent: number;
  readonly dropped: number;
  readonly length: number;
}

/**
 * Creates and registers the agent metrics on `registry`; with `eventCounts`,
 * also the security-event feed's queued, sent and dropped totals and queue
 * length, read from it at each scrape.
 */
export function createAgentMetrics(
  registry: Registry,
  options: { eventCounts?: () => EventFeedCounts } = {},
): AgentMetrics {
  const registers = [registry];
  const eventCounts = options.eventCounts;
  if (eventCounts !== undefined) registerEventMetrics(registry, eventCounts);
  return {
    connections: new Counter({
      name: 'palisade_agent_connections_total',
      help:
        'Connections by direction and result ' +
        '(allowed, denied, rejected, plaintext, error, ...).',
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
      help:
        'Peers refused before policy, by reason: ' +
        'untrusted, revoked, expired, no certificate, ...',
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
    meshPolicyVersion: new Gauge({
      name: 'palisade_agent_mesh_policy_version',
      help: 'Version of the mesh policy in force; 0 while the CA has none.',
      registers,
    }),
    policyLayerDenials: new Counter({
      name: 'palisade_agent_policy_layer_denials_total',
      help:
        'Inbound peers refused (or, in dry run, that would be) ' +
        'by the deciding layer: mesh, workload, default.',
      labelNames: ['layer', 'dry_run'],
      registers,
    }),
    muxSessions: new Gauge({
      name: 'palisade_agent_mux_sessions',
      help: 'Multiplexed mutual-TLS sessions between agents open now, by direction.',
      labelNames: ['direction'],
      registers,
    }),
    muxStreams: new Counter({
      name: 'palisade_agent_mux_streams_total',
      help: 'Application connections carried as streams of a multiplexed session, by direction.',
      labelNames: ['direction'],
      registers,
    }),
    muxProtocolErrors: new Counter({
      name: 'palisade_agent_mux_protocol_errors_total',
      help: 'Multiplexed sessions closed because the peer broke the protocol, by reason.',
      labelNames: ['direction', 'reason'],
      registers,
    }),
  };
}

function registerEventMetrics(registry: Registry, counts: () => EventFeedCounts): void {
  const registers = [registry];
  const total = (name: string, help: string, pick: (c: EventFeedCounts) => number) =>
    new Counter({
      name,
      help,
      registers,
      collect() {
        // The feed keeps its own totals; the counter mirrors them at each scrape.
        this.reset();
        this.inc(pick(counts()));
      },
    });
  total(
    'palisade_agent_events_queued_total',
    'Security events taken into the queue for the CA.',
    (c) => c.queued,
  );
  total('palisade_agent_events_sent_total', 'Security events the CA accepted.', (c) => c.sent);
  total(
    'palisade_agent_events_dropped_total',
    'Security events dropped because the queue for the CA was full.',
    (c) => c.dropped,
  );
  new Gauge({
    name: 'palisade_agent_events_queue_length',
    help: 'Security events waiting to be sent to the CA.',
    registers,
    collect() {
      this.set(counts().length);
    },
  });
}
