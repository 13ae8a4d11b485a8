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
  saJwks: 'PALISADE_CA_SA_JWKS',
  saIssuer: 'PALISADE_CA_SA_ISSUER',
  passphraseFile: 'PALISADE_CA_PASSPHRASE_FILE',
  passphrase: 'PALISADE_CA_PASSPHRASE',
  logLevel: 'PALISADE_LOG_LEVEL',
} as const;

/** Environment as the loaders see it. */
export type Env = Readonly<Record<string, string | undefined>>;
