import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/** The CA's metrics, registered on the registry its composition root owns. */
export interface CaMetrics {
  signings: Counter<'result' | 'via'>;
  signingSeconds: Histogram<'via'>;
  revocations: Counter<'kind'>;
  rejections: Counter<'rpc' | 'code'>;
  watchStreams: Gauge;
  trustVersion: Gauge;
  rootExpirySeconds: Gauge;
  intermediateExpirySeconds: Gauge;
  joinTokensCreated: Counter;
  meshPolicyVersion: Gauge;
  eventsReceived: Counter;
  eventsStored: Counter;
  eventsRefused: Counter<'reason'>;
  eventWatchStreams: Gauge;
}

/** Creates and registers the CA metrics on `registry`. */
export function createCaMetrics(registry: Registry): CaMetrics {
  const registers = [registry];
  return {
    signings: new Counter({
      name: 'palisade_ca_signings_total',
      help: 'Certificate signing requests by result (issued, rejected) and proof kind.',
      labelNames: ['result', 'via'],
      registers,
    }),
    signingSeconds: new Histogram({
      name: 'palisade_ca_signing_duration_seconds',
      help: 'Time to check and sign one certificate request, by proof kind.',
      labelNames: ['via'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers,
    }),
    revocations: new Counter({
      name: 'palisade_ca_revocations_total',
      help: 'Revocations committed, by kind (serial, identity).',
      labelNames: ['kind'],
      registers,
    }),
    rejections: new Counter({
      name: 'palisade_ca_rejected_requests_total',
      help: 'Requests refused, by RPC and error code.',
      labelNames: ['rpc', 'code'],
      registers,
    }),
    watchStreams: new Gauge({
      name: 'palisade_ca_watch_streams',
      help: 'Open WatchTrust streams.',
      registers,
    }),
    trustVersion: new Gauge({
      name: 'palisade_ca_trust_version',
      help: 'Current version of the trust bundle and revocation set.',
      registers,
    }),
    rootExpirySeconds: new Gauge({
      name: 'palisade_ca_root_expiry_timestamp_seconds',
      help: 'Unix time at which the root certificate expires.',
      registers,
    }),
    intermediateExpirySeconds: new Gauge({
      name: 'palisade_ca_intermediate_expiry_timestamp_seconds',
      help: 'Unix time at which the signing intermediate certificate expires.',
      registers,
    }),
    joinTokensCreated: new Counter({
      name: 'palisade_ca_join_tokens_created_total',
      help: 'Join tokens created.',
      registers,
    }),
    meshPolicyVersion: new Gauge({
      name: 'palisade_ca_mesh_policy_version',
      help: 'Version of the mesh policy in force; 0 while none was set.',
      registers,
    }),
    eventsReceived: new Counter({
      name: 'palisade_ca_events_received_total',
      help: 'Security events agents reported, stored or not.',
      registers,
    }),
    eventsStored: new Counter({
      name: 'palisade_ca_events_stored_total',
      help: 'Security events stored in the feed.',
      registers,
    }),
    eventsRefused: new Counter({
      name: 'palisade_ca_events_refused_total',
      help: 'Security events refused, by reason (invalid, rate_limited, unauthenticated).',
      labelNames: ['reason'],
      registers,
    }),
    eventWatchStreams: new Gauge({
      name: 'palisade_ca_event_watch_streams',
      help: 'Open WatchEvents streams.',
      registers,
    }),
  };
}
