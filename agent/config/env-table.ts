/**
 * The one table of environment variables Palisade reads, by the flag each
 * stands for. Only the config loaders consult it; they take `env` as an
 * argument so tests pass plain objects.
 */
export const ENV_BY_FLAG = {
  // palisade ca ...
  dir: 'PALISADE_CA_DIR',
  caAddr: 'PALISADE_CA_ADDR',
  listen: 'PALISADE_CA_LISTEN',
  metricsListen: 'PALISADE_CA_METRICS_LISTEN',
  defaultTtl: 'PALISADE_CA_DEFAULT_TTL',
  maxTtl: 'PALISADE_CA_MAX_TTL',
  minTtl: 'PALISADE_CA_MIN_TTL',
  signWorkers: 'PALISADE_CA_SIGN_WORKERS',
  saJwks: 'PALISADE_CA_SA_JWKS',
  saIssuer: 'PALISADE_CA_SA_ISSUER',
  passphraseFile: 'PALISADE_CA_PASSPHRASE_FILE',
  passphrase: 'PALISADE_CA_PASSPHRASE',
  logLevel: 'PALISADE_LOG_LEVEL',
  // set by Kubernetes in every pod; `--sa-jwks kubernetes` reaches the API server there
  kubernetesServiceHost: 'KUBERNETES_SERVICE_HOST',
  kubernetesServicePort: 'KUBERNETES_SERVICE_PORT',
  // palisade agent
  caBundle: 'PALISADE_CA_BUNDLE',
  tokenFile: 'PALISADE_TOKEN_FILE',
  joinToken: 'PALISADE_JOIN_TOKEN',
  id: 'PALISADE_ID',
  trustDomain: 'PALISADE_TRUST_DOMAIN',
  appAddr: 'PALISADE_APP_ADDR',
  inboundListen: 'PALISADE_INBOUND_LISTEN',
  inboundHandshakeTimeout: 'PALISADE_INBOUND_HANDSHAKE_TIMEOUT',
  inboundMaxConnections: 'PALISADE_INBOUND_MAX_CONNECTIONS',
  adminListen: 'PALISADE_ADMIN_LISTEN',
  allow: 'PALISADE_ALLOW',
  policyFile: 'PALISADE_POLICY_FILE',
  mode: 'PALISADE_MODE',
  dryRunPolicy: 'PALISADE_DRY_RUN_POLICY',
  upstream: 'PALISADE_UPSTREAMS',
  certTtl: 'PALISADE_CERT_TTL',
  keyType: 'PALISADE_KEY_TYPE',
  drainTimeout: 'PALISADE_DRAIN_TIMEOUT',
  outboundListen: 'PALISADE_OUTBOUND_LISTEN',
  meshCidrs: 'PALISADE_MESH_CIDRS',
  outboundExternal: 'PALISADE_OUTBOUND_EXTERNAL',
  jwtIssuer: 'PALISADE_JWT_ISSUER',
  jwtAudience: 'PALISADE_JWT_AUDIENCE',
  jwtJwks: 'PALISADE_JWT_JWKS',
  httpRules: 'PALISADE_HTTP_RULES',
  httpPorts: 'PALISADE_HTTP_PORTS',
  eventsQueueSize: 'PALISADE_EVENTS_QUEUE_SIZE',
  peerMux: 'PALISADE_PEER_MUX',
} as const;

/** Environment as the loaders see it. */
export type Env = Readonly<Record<string, string | undefined>>;
