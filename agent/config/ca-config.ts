import { apiServerUrlFromEnv, isJwksDiscovery } from '../../certs/authn/index.js';
import type { CaServeConfig } from '../../certs/ca.js';
import { DEFAULT_CA_DIR, type PassphraseSource } from '../../certs/ca-dir.js';
import { parseDurationSeconds } from '../../certs/duration.js';
import { parseHostPort } from '../../certs/host-port.js';
import { LOG_LEVELS, type LogLevel } from '../../certs/log.js';
import { ENV_BY_FLAG, type Env } from './env-table.js';
import { DEFAULT_CA_ADDR } from './ca-defaults.js';
import { ProblemList } from './config-error.js';

export { DEFAULT_CA_ADDR };
export const DEFAULT_CA_LISTEN = '0.0.0.0:15112';
export const DEFAULT_TTL = '1h';
export const DEFAULT_MAX_TTL = '24h';

/** Flags of `palisade ca serve` as commander hands them over (all optional strings). */
export interface CaServeFlags {
  dir?: string;
  listen?: string;
  metricsListen?: string;
  defaultTtl?: string;
  maxTtl?: string;
  minTtl?: string;
  signWorkers?: string;
  saJwks?: string;
  saIssuer?: string;
  passphraseFile?: string;
  logLevel?: string;
}

/** Settings every `palisade ca` command shares. */
export interface CaCommonConfig {
  dir: string;
  caAddr: string;
  passphrase: PassphraseSource;
  logLevel: LogLevel;
}

/**
 * Resolves the settings shared by all `ca` commands: defaults < env < flags.
 * Throws ConfigError naming every bad value.
 */
export function loadCaCommonConfig(
  flags: { dir?: string; caAddr?: string; passphraseFile?: string; logLevel?: string },
  env: Env,
): CaCommonConfig {
  const problems = new ProblemList();
  const pick = <K extends keyof typeof ENV_BY_FLAG>(key: K, flag: string | undefined) =>
    flag ?? env[ENV_BY_FLAG[key]];
  const caAddr = pick('caAddr', flags.caAddr) ?? DEFAULT_CA_ADDR;
  problems.check('--ca-addr', caAddr, (v) => parseHostPort(v));
  const logLevel = pick('logLevel', flags.logLevel) ?? 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    problems.add('--log-level', logLevel, `must be one of ${LOG_LEVELS.join(', ')}`);
  }
  problems.throwIfAny();
  const passphraseFile = pick('passphraseFile', flags.passphraseFile);
  const passphraseValue = env[ENV_BY_FLAG.passphrase];
  return {
    dir: pick('dir', flags.dir) ?? DEFAULT_CA_DIR,
    caAddr,
    passphrase: {
      ...(passphraseValue ? { value: passphraseValue } : {}),
      ...(passphraseFile ? { file: passphraseFile } : {}),
    },
    logLevel: logLevel as LogLevel,
  };
}

/** Resolves `palisade ca serve` settings: defaults < env < flags, all problems at once. */
export function loadCaServeConfig(
  flags: CaServeFlags,
  env: Env,
): CaServeConfig & { logLevel: LogLevel } {
  const common = loadCaCommonConfig(flags, env);
  const problems = new ProblemList();
  const pick = <K extends keyof typeof ENV_BY_FLAG>(key: K, flag: string | undefined) =>
    flag ?? env[ENV_BY_FLAG[key]];
  const listen = problems.check(
    '--listen',
    pick('listen', flags.listen) ?? DEFAULT_CA_LISTEN,
    (v) => parseHostPort(v, '0.0.0.0'),
  );
  const metricsListenText = pick('metricsListen', flags.metricsListen);
  const metricsListen = problems.check('--metrics-listen', metricsListenText, (v) =>
    parseHostPort(v, '0.0.0.0'),
  );
  const ttl = (setting: string, text: string) =>
    problems.check(setting, text, (v) => {
      const seconds = parseDurationSeconds(v);
      if (seconds < 60) throw new Error('must be at least 1m');
      return seconds;
    });
  const defaultTtlSeconds = ttl(
    '--default-ttl',
    pick('defaultTtl', flags.defaultTtl) ?? DEFAULT_TTL,
  );
  const maxTtlSeconds = ttl('--max-ttl', pick('maxTtl', flags.maxTtl) ?? DEFAULT_MAX_TTL);
  const minTtlSeconds = problems.check('--min-ttl', pick('minTtl', flags.minTtl) ?? '1m', (v) => {
    const seconds = parseDurationSeconds(v);
    if (seconds < 5) throw new Error('must be at least 5s');
    return seconds;
  });
  if (defaultTtlSeconds && maxTtlSeconds && defaultTtlSeconds > maxTtlSeconds) {
    problems.add('--default-ttl', String(defaultTtlSeconds), 'exceeds --max-ttl');
  }
  const signWorkers = problems.check(
    '--sign-workers',
    pick('signWorkers', flags.signWorkers) ?? '1',
    (v) => {
      if (!/^\d+$/.test(v) || Number(v) > 16)
        throw new Error('must be a whole number from 0 to 16');
      return Number(v);
    },
  );
  const saJwks = pick('saJwks', flags.saJwks);
  const saIssuer = pick('saIssuer', flags.saIssuer);
  const isDiscovery = saJwks !== undefined && isJwksDiscovery(saJwks);
  // Discovery reads the issuer from the API server; a file or URL cannot.
  if (saIssuer && !saJwks) {
    problems.add('--sa-jwks', '', 'is required with --sa-issuer');
  } else if (saJwks && !saIssuer && !isDiscovery) {
    problems.add('--sa-issuer', '', 'is required unless --sa-jwks is kubernetes');
  }
  problems.throwIfAny();
  return {
    dir: common.dir,
    listen: listen as NonNullable<typeof listen>,
    metricsListen,
    defaultTtlSeconds: defaultTtlSeconds as number,
    maxTtlSeconds: maxTtlSeconds as number,
    minTtlSeconds: minTtlSeconds as number,
    signWorkers: signWorkers as number,
    saJwks,
    saIssuer,
    ...(isDiscovery
      ? {
          saApiServerUrl: apiServerUrlFromEnv({
            KUBERNETES_SERVICE_HOST: env[ENV_BY_FLAG.kubernetesServiceHost],
            KUBERNETES_SERVICE_PORT: env[ENV_BY_FLAG.kubernetesServicePort],
          }),
        }
      : {}),
    passphrase: common.passphrase,
    sweepIntervalMs: 30_000,
    logLevel: common.logLevel,
  };
}
