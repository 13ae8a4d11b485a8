import { readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { parseDurationSeconds } from '../../certs/duration.js';
import { parseHostPort, type HostPort } from '../../certs/host-port.js';
import { LOG_LEVELS, type LogLevel } from '../../certs/log.js';
import { DEFAULT_TRUST_DOMAIN, parseSpiffeId, parseTrustDomain } from '../../certs/spiffe-id.js';
import { KEY_TYPES, splitPemChain, type KeyType } from '../../certs/x509/index.js';
import type { IdentityProof } from '../identity/index.js';
import type { UpstreamSpec } from '../outbound/index.js';
import { DEFAULT_CA_ADDR } from './ca-defaults.js';
import { DEFAULT_EVENT_QUEUE_SIZE, MAX_EVENT_QUEUE_SIZE } from '../events/index.js';
import { parseCidr } from '../intercept/cidr.js';
import { httpSectionFromText, type HttpSection, type HttpSettingName } from '../policy/index.js';
import { ProblemList } from './config-error.js';
import { ENV_BY_FLAG, type Env } from './env-table.js';

/** Default agent ports (DESIGN.md). */
/**
 * V8 flags the sidecar process is meant to run with (set as NODE_OPTIONS by
 * the injector, passed by the benchmarks): 2 MiB young-generation semi-spaces
 * cut the agent's RSS by about 10 MiB idle and 15 MiB with 1,000 connections
 * at no CPU cost measured. They must be given at process start.
 */
export const AGENT_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=2'];

export const DEFAULT_INBOUND_LISTEN = '0.0.0.0:15106';
export const DEFAULT_ADMIN_LISTEN = '127.0.0.1:15120';
export const DEFAULT_OUTBOUND_LISTEN = '127.0.0.1:15101';

/** What the transparent outbound listener does with destinations outside the mesh. */
export type ExternalPolicy = 'pass' | 'refuse';

/** Flags of `palisade agent` as commander hands them over. */
export interface AgentFlags {
  caAddr?: string;
  caBundle?: string;
  tokenFile?: string;
  joinToken?: string;
  id?: string;
  trustDomain?: string;
  appAddr?: string;
  inboundListen?: string;
  inboundHandshakeTimeout?: string;
  inboundMaxConnections?: string;
  adminListen?: string;
  allow?: string[];
  policyFile?: string;
  mode?: string;
  dryRunPolicy?: boolean;
  upstream?: string[];
  outboundListen?: string;
  meshCidrs?: string[];
  outboundExternal?: string;
  certTtl?: string;
  keyType?: string;
  drainTimeout?: string;
  logLevel?: string;
  jwtIssuer?: string;
  jwtAudience?: string;
  jwtJwks?: string;
  httpRules?: string;
  httpPorts?: string;
  eventsQueueSize?: string;
  peerMux?: string;
}

/** The flag that carries each http setting, as problems name it. */
const HTTP_FLAGS: Readonly<Record<HttpSettingName, string>> = {
  issuer: '--jwt-issuer',
  audience: '--jwt-audience',
  jwks: '--jwt-jwks',
  rules: '--http-rules',
  ports: '--http-ports',
};

/** The agent's whole configuration, validated and frozen. */
export interface AgentConfig {
  readonly ca: { readonly addr: string; readonly bundlePem: string };
  readonly identity: {
    readonly proof: IdentityProof;
    readonly spiffeId: string | undefined;
    readonly trustDomain: string;
    readonly certTtlSeconds: number | undefined;
    readonly keyType: KeyType;
  };
  readonly inbound: {
    readonly listen: HostPort;
    /** Unset only with interception: the original destination port names the app port. */
    readonly appAddr: HostPort | undefined;
    readonly handshakeTimeoutMs: number;
    readonly maxConnections: number;
  };
  readonly policy: {
    readonly allow: readonly string[] | undefined;
    readonly file: string | undefined;
    readonly mode: 'strict' | 'permissive';
    readonly dryRun: boolean;
    /**
     * The http section built from --jwt-* and --http-* flags (or env);
     * undefined when none is given. A policy file's own http section is
     * refused alongside it.
     */
    readonly http: HttpSection | undefined;
  };
  readonly upstreams: readonly UpstreamSpec[];
  /** How application connections travel to peer agents. */
  readonly peer: {
    /**
     * Many connections as streams over one mutual-TLS session per peer
     * (`palisade-mux/1`, negotiated by ALPN); off: one TLS connection each.
     */
    readonly isMuxOn: boolean;
  };
  /** Transparent interception, on when --outbound-listen or --mesh-cidrs is given. */
  readonly transparent:
    | {
        readonly listen: HostPort;
        /** Destinations dialled with mutual TLS (`10.0.0.0/8`, `fd00::/8`). */
        readonly meshCidrs: readonly string[];
        readonly external: ExternalPolicy;
      }
    | undefined;
  readonly admin: { readonly listen: HostPort };
  /** The security-event feed to the CA. */
  readonly events: {
    /** Events held while the CA is slow or down; 0 turns forwarding off. */
    readonly queueSize: number;
  };
  readonly drainTimeoutMs: number;
  readonly logLevel: LogLevel;
}

/**
 * Builds the agent config: defaults < env < flags. Every bad flag or
 * variable is collected into one ConfigError naming each (secrets redacted).
 */
export function loadAgentConfig(flags: AgentFlags, env: Env): AgentConfig {
  const problems = new ProblemList();
  const pick = (key: keyof typeof ENV_BY_FLAG, flag: string | undefined) =>
    flag ?? env[ENV_BY_FLAG[key]];
  const pickList = (key: keyof typeof ENV_BY_FLAG, flag: string[] | undefined) =>
    flag && flag.length > 0 ? flag : splitList(env[ENV_BY_FLAG[key]]);

  const caAddr = pick('caAddr', flags.caAddr) ?? DEFAULT_CA_ADDR;
  problems.check('--ca-addr', caAddr, (v) => parseHostPort(v));
  const bundlePath = pick('caBundle', flags.caBundle);
  let bundlePem = '';
  if (!bundlePath) problems.add('--ca-bundle', '', 'is required (the trust bundle PEM)');
  else {
    bundlePem =
      problems.check('--ca-bundle', bundlePath, (path) => {
        const text = readFileSync(path, 'utf8');
        if (splitPemChain(text).length === 0) throw new Error('holds no PEM certificate');
        return text;
      }) ?? '';
  }

  const tokenFile = pick('tokenFile', flags.tokenFile);
  const joinToken = pick('joinToken', flags.joinToken);
  let proof: IdentityProof | undefined;
  if (tokenFile && joinToken)
    problems.add('--join-token', '[redacted]', 'give --token-file or --join-token, not both');
  else if (tokenFile) proof = { kind: 'token-file', path: tokenFile };
  else if (joinToken) proof = { kind: 'join-token', token: joinToken };
  else problems.add('--token-file', '', 'one of --token-file or --join-token is required');

  const idText = pick('id', flags.id);
  const spiffeId = problems.check('--id', idText, (v) => parseSpiffeId(v).uri);
  if (proof?.kind === 'join-token' && !idText)
    problems.add('--id', '', 'is required with --join-token');
  const tdText = pick('trustDomain', flags.trustDomain);
  const trustDomain =
    problems.check('--trust-domain', tdText, parseTrustDomain) ??
    (spiffeId ? parseSpiffeId(spiffeId).trustDomain : undefined) ??
    trustDomainOfBundle(bundlePem) ??
    DEFAULT_TRUST_DOMAIN;
  if (spiffeId && parseSpiffeId(spiffeId).trustDomain !== trustDomain) {
    problems.add('--id', spiffeId, `is outside trust domain ${trustDomain}`);
  }

  const outboundListenText = pick('outboundListen', flags.outboundListen);
  const meshCidrs = pickList('meshCidrs', flags.meshCidrs);
  const isTransparent = outboundListenText !== undefined || meshCidrs.length > 0;
  const appText = pick('appAddr', flags.appAddr);
  if (!appText && !isTransparent)
    problems.add(
      '--app-addr',
      '',
      'is required (where the application listens) without interception',
    );
  const appAddr = problems.check('--app-addr', appText, (v) => parseHostPort(v));
  const inboundListen = problems.check(
    '--inbound-listen',
    pick('inboundListen', flags.inboundListen) ?? DEFAULT_INBOUND_LISTEN,
    (v) => parseHostPort(v, '0.0.0.0'),
  );
  const adminListen = problems.check(
    '--admin-listen',
    pick('adminListen', flags.adminListen) ?? DEFAULT_ADMIN_LISTEN,
    (v) => parseHostPort(v),
  );
  const handshakeTimeoutMs = problems.check(
    '--inbound-handshake-timeout',
    pick('inboundHandshakeTimeout', flags.inboundHandshakeTimeout) ?? '10s',
    (v) => positive(parseDurationSeconds(v)) * 1000,
  );
  const maxConnections = problems.check(
    '--inbound-max-connections',
    pick('inboundMaxConnections', flags.inboundMaxConnections) ?? '10000',
    (v) => positive(integer(v)),
  );
  const drainTimeoutMs = problems.check(
    '--drain-timeout',
    pick('drainTimeout', flags.drainTimeout) ?? '15s',
    (v) => parseDurationSeconds(v) * 1000,
  );
  const certTtlText = pick('certTtl', flags.certTtl);
  const certTtlSeconds = problems.check('--cert-ttl', certTtlText, (v) =>
    positive(parseDurationSeconds(v)),
  );

  const keyType = pick('keyType', flags.keyType) ?? 'ecdsa-p256';
  if (!(KEY_TYPES as readonly string[]).includes(keyType))
    problems.add('--key-type', keyType, `must be one of ${KEY_TYPES.join(', ')}`);
  const mode = pick('mode', flags.mode) ?? 'strict';
  if (mode !== 'strict' && mode !== 'permissive')
    problems.add('--mode', mode, 'must be strict or permissive');
  const dryRun = flags.dryRunPolicy ?? isTrue(env[ENV_BY_FLAG.dryRunPolicy]);
  const allow = pickList('allow', flags.allow);
  const policyFile = pick('policyFile', flags.policyFile);
  if (allow.length > 0 && policyFile)
    problems.add('--policy-file', policyFile, 'give --allow or --policy-file, not both');

  const httpTexts = {
    issuer: pick('jwtIssuer', flags.jwtIssuer),
    audience: pick('jwtAudience', flags.jwtAudience),
    jwks: pick('jwtJwks', flags.jwtJwks),
    rules: pick('httpRules', flags.httpRules),
    ports: pick('httpPorts', flags.httpPorts),
  };
  const httpResult = httpSectionFromText(httpTexts, trustDomain);
  if (httpResult !== undefined && !httpResult.ok) {
    for (const { setting, problem } of httpResult.problems) {
      problems.add(HTTP_FLAGS[setting], httpTexts[setting] ?? '', problem);
    }
  }
  const http = httpResult?.ok ? httpResult.section : undefined;

  const upstreams: UpstreamSpec[] = [];
  for (const spec of pickList('upstream', flags.upstream)) {
    const parsed = problems.check('--upstream', spec, parseUpstream);
    if (parsed) upstreams.push(parsed);
  }
  const outboundListen = problems.check(
    '--outbound-listen',
    outboundListenText ?? DEFAULT_OUTBOUND_LISTEN,
    (v) => parseHostPort(v),
  );
  const meshBlocks: string[] = [];
  for (const text of meshCidrs) {
    const cidr = problems.check('--mesh-cidrs', text, parseCidr);
    if (cidr) meshBlocks.push(cidr.text);
  }
  const external = pick('outboundExternal', flags.outboundExternal) ?? 'pass';
  if (external !== 'pass' && external !== 'refuse')
    problems.add('--outbound-external', external, 'must be pass or refuse');
  const eventsQueueSize = problems.check(
    '--events-queue-size',
    pick('eventsQueueSize', flags.eventsQueueSize) ?? String(DEFAULT_EVENT_QUEUE_SIZE),
    (v) => {
      const n = integer(v);
      if (n > MAX_EVENT_QUEUE_SIZE) throw new Error(`must be at most ${MAX_EVENT_QUEUE_SIZE}`);
      return n;
    },
  );
  const peerMux = pick('peerMux', flags.peerMux) ?? 'on';
  if (peerMux !== 'on' && peerMux !== 'off')
    problems.add('--peer-mux', peerMux, 'must be on or off');
  const logLevel = pick('logLevel', flags.logLevel) ?? 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel))
    problems.add('--log-level', logLevel, `must be one of ${LOG_LEVELS.join(', ')}`);
  problems.throwIfAny();

  return deepFreeze({
    ca: { addr: caAddr, bundlePem },
    identity: {
      proof: proof as IdentityProof,
      spiffeId,
      trustDomain,
      certTtlSeconds,
      keyType: keyType as KeyType,
    },
    inbound: {
      listen: inboundListen as HostPort,
      appAddr,
      handshakeTimeoutMs: handshakeTimeoutMs as number,
      maxConnections: maxConnections as number,
    },
    policy: {
      allow: allow.length > 0 ? allow : undefined,
      file: policyFile,
      mode: mode as 'strict' | 'permissive',
      dryRun,
      http,
    },
    upstreams,
    peer: { isMuxOn: peerMux === 'on' },
    transparent: isTransparent
      ? {
          listen: outboundListen as HostPort,
          meshCidrs: meshBlocks,
          external: external as ExternalPolicy,
        }
      : undefined,
    admin: { listen: adminListen as HostPort },
    events: { queueSize: eventsQueueSize as number },
    drainTimeoutMs: drainTimeoutMs as number,
    logLevel: logLevel as LogLevel,
  });
}

/** Parses `LOCALPORT=HOST:PORT[@SPIFFE_ID]`. */
export function parseUpstream(text: string): UpstreamSpec {
  const match = /^(\d{1,5})=([^@]+?)(?:@(spiffe:\/\/.+))?$/.exec(text.trim());
  if (!match) throw new Error('expected LOCALPORT=HOST:PORT[@SPIFFE_ID]');
  const localPort = Number(match[1]);
  if (localPort > 65535) throw new Error(`local port ${localPort} is out of range`);
  const target = parseHostPort(match[2] as string);
  return {
    localPort,
    host: target.host,
    port: target.port,
    expectedId: match[3] ? parseSpiffeId(match[3]).uri : undefined,
  };
}

/** The trust domain named by the first root's `spiffe://<td>` URI SAN, if any. */
function trustDomainOfBundle(bundlePem: string): string | undefined {
  const first = splitPemChain(bundlePem)[0];
  if (!first) return undefined;
  const san = new X509Certificate(first).subjectAltName ?? '';
  const match = /URI:spiffe:\/\/([a-z0-9._-]+)\/?(?:,|$)/.exec(san);
  return match?.[1];
}

function splitList(text: string | undefined): string[] {
  return (text ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

function isTrue(text: string | undefined): boolean {
  return text === 'true' || text === '1' || text === 'yes';
}

function integer(text: string): number {
  if (!/^\d+$/.test(text)) throw new Error('must be a whole number');
  return Number(text);
}

function positive(n: number): number {
  if (!(n > 0)) throw new Error('must be greater than zero');
  return n;
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}
